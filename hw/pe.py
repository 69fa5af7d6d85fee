"""The row-stationary processing element.

One PE runs Eyeriss's 1-D primitive: ``p`` filter rows of ``S`` taps over ``q`` channels stay in
the filter scratchpad while ifmap rows stream through a sliding window, and each output column
``x`` of each filter ``f`` leaves as one partial sum::

    psum_out[f, x] = psum_in[f, x] + sum_{c < q, s < S} w[f, c, s] * i[c, x*stride + s]

Stream formats (all words signed, two's complement):

* ``filter`` -- ``p*q*S`` words once per pass, ordered ``for f: for s: for c``. The order makes
  the filter address ``f*q*S + k`` where ``k = s*q + c`` is also the window index below.
* ``ifmap`` -- ``rows`` ifmap rows, each ``W`` columns of ``q`` channels (``for col: for c``).
  Every column is sent, also those that no output uses (stride > S, or a ragged right edge);
  the PE drops them after receiving them, which keeps multicast to a diagonal of PEs simple.
* ``psum_in`` -- when ``psum_in_en``: ``rows * F * p`` words ordered ``for row: for x: for f``,
  added to the local sums (the PE below in the column, or the global buffer between passes).
* ``psum_out`` -- ``rows * F * p`` words in that same order.

Why this shape:

* The ifmap scratchpad is a ring of ``ring_cols >= S`` columns. Columns beyond the current
  window are written while the MAC works on the window, so ifmap delivery overlaps compute
  whenever ``q * (S + 1)`` fits in the scratchpad.
* For each window value the PE reads the ifmap scratchpad once and meets all ``p`` filters
  (the loop over ``f`` is innermost): a zero value then gates ``p`` filter reads and ``p``
  MACs at once (Eyeriss zero-gating). Gated slots keep their cycle, so the schedule -- and the
  performance model -- does not depend on the data; they save energy, which the counters show.
* The psum scratchpad is a register file updated in the last pipeline stage
  (read-modify-write in one cycle), so back-to-back updates of the same filter need no
  forwarding, whatever ``p`` is (with ``registered_ready`` the old value is read a stage
  early and the one being written is forwarded). The last tap of a column goes straight to a
  small output FIFO instead of back into the scratchpad, so no drain phase interrupts the MAC.

Pipeline: issue (window and filter addresses, ifmap scratchpad read, filter scratchpad read
request) -> multiply (filter data arrives) -> accumulate. A full output FIFO stalls all three.

Modes (``cfg.mode``; hardware for a mode exists only when the PE is built with it):

* ``MODE_RS`` (0) -- the above.
* ``MODE_WS`` (1, weight-stationary) -- the filters stay for the pass and the window works as
  in RS, but no product is accumulated here: each MAC slot's product (0 when gated) leaves on
  ``product`` (valid in ``product_valid``) the cycle after its multiply, and the psum
  scratchpad and output FIFO are not used. A slot issues only while ``go`` is high: the array
  raises it when every PE has ``can_issue`` (high in a PE whose ``active`` is low: one the
  pass does not use; with ``registered_ready``, a cycle after every PE had ``can_next``), so
  all PEs issue the same slot in the same cycle and the array can add their products (the
  weights stay, the psums move).
* ``MODE_OS`` (2, output-stationary) -- as RS (psums stay in the psum scratchpad until the
  output is complete, then leave once), but the filters are not kept across outputs: after the
  last slot of each output column but the last, the PE goes back to loading and takes the next
  ``p*q*S`` filter words (the same block again, streamed from the global buffer), accepting
  ifmap words into its ring meanwhile. ``q`` counts the "channels" the array feeds it (in the
  accelerator, channels x filter rows). Slots issue under ``go`` as in WS: the PEs of a
  column then finish their outputs together, and the psum chain never backs up into a PE
  whose row group was reloaded before the rows above it.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .params import AcceleratorParams

__all__ = ["PE", "PERowConfig", "PE_COUNTERS", "MAX_ROW_WIDTH", "MAX_STRIDE", "pe_depths",
           "MODE_RS", "MODE_WS", "MODE_OS"]

#: ``cfg.mode`` values (the descriptor's ``dataflow`` codes).
MODE_RS, MODE_WS, MODE_OS = 0, 1, 2

#: Longest ifmap row a PE accepts (AlexNet CONV1 needs 227).
MAX_ROW_WIDTH = 4095
#: Largest convolution stride.
MAX_STRIDE = 15
#: Most ifmap rows one filter load serves in a pass.
MAX_ROWS = 65535

#: Counter names in the order of the ``counters`` port.
PE_COUNTERS = ("macs", "gated_macs", "filter_reads", "filter_writes",
               "ifmap_reads", "ifmap_writes", "psum_reads", "psum_writes")


#: Yosys memory attributes per scratchpad placement (``AcceleratorParams.filter_spad_ram``).
RAM_STYLES = {"auto": {}, "lut": {"ram_style": "distributed"}, "block": {"ram_style": "block"}}


def _bits(n: int) -> int:
    return max(1, int(n).bit_length())


@dataclass(frozen=True, kw_only=True)
class PERowConfig:
    """What one PE is programmed with for a processing pass.

    The fields a user chooses; :meth:`fields` adds the derived values the hardware needs so
    that no PE carries a multiplier or divider for its configuration.
    """
    taps: int            # S
    channels: int        # q
    filters: int         # p
    stride: int = 1
    width: int           # W, ifmap row width (after padding)
    rows: int = 1        # ifmap rows processed with the same filters
    psum_in: bool = False
    ring_cols: int = 0   # 0: as many window columns as the ifmap scratchpad holds
    mode: int = MODE_RS

    @property
    def out_width(self) -> int:
        return (self.width - self.taps) // self.stride + 1

    def pack(self, *, ifmap_depth: int, filter_depth: int, psum_depth: int) -> int:
        """The ``cfg`` port's bit pattern for a PE with these scratchpad depths."""
        depths = dict(ifmap_depth=ifmap_depth, filter_depth=filter_depth, psum_depth=psum_depth)
        return pe_config_layout(**depths).const(self.fields(**depths)).as_bits()

    def fields(self, *, ifmap_depth: int, filter_depth: int, psum_depth: int) -> dict:
        """Derived register values, after checking the PE can execute this configuration."""
        def need(name, value, lo, hi, why=""):
            if not lo <= value <= hi:
                raise ValueError(f"{name} = {value} is out of range: allowed {lo}..{hi}{why}")
        need("channels", self.channels, 1, ifmap_depth, " (ifmap scratchpad depth)")
        need("taps", self.taps, 1, ifmap_depth // self.channels,
             f" (ifmap scratchpad {ifmap_depth} words / {self.channels} channels)")
        need("mode", self.mode, MODE_RS, MODE_OS)
        if self.mode == MODE_WS:   # no psums are held: the filter scratchpad bounds p
            need("filters", self.filters, 1, filter_depth, " (filter scratchpad depth)")
        else:
            need("filters", self.filters, 1, psum_depth, " (psum scratchpad depth)")
        fw = self.filters * self.channels * self.taps
        need("filters x channels x taps", fw, 1, filter_depth, " (filter scratchpad depth)")
        need("stride", self.stride, 1, MAX_STRIDE)
        need("width", self.width, self.taps, MAX_ROW_WIDTH, " (at least the taps)")
        need("rows", self.rows, 1, MAX_ROWS)
        ring_cols = self.ring_cols or ifmap_depth // self.channels
        need("ring_cols", ring_cols, self.taps, ifmap_depth // self.channels)
        ring_words = ring_cols * self.channels
        return dict(
            taps=self.taps, channels=self.channels, filters=self.filters, stride=self.stride,
            width=self.width, out_width=self.out_width, rows=self.rows,
            psum_in_en=int(self.psum_in),
            window_words=self.channels * self.taps, filter_words=fw,
            ring_cols=ring_cols, ring_words=ring_words,
            step_words=(self.stride * self.channels) % ring_words,
            mode=self.mode,
        )


def pe_config_layout(ifmap_depth: int, filter_depth: int, psum_depth: int) -> data.StructLayout:
    """The ``cfg`` port's layout; widths follow the scratchpad depths."""
    return data.StructLayout({
        "taps":         unsigned(_bits(ifmap_depth)),
        "channels":     unsigned(_bits(ifmap_depth)),
        "filters":      unsigned(_bits(max(psum_depth, filter_depth))),
        "stride":       unsigned(_bits(MAX_STRIDE)),
        "width":        unsigned(_bits(MAX_ROW_WIDTH)),
        "out_width":    unsigned(_bits(MAX_ROW_WIDTH)),
        "rows":         unsigned(_bits(MAX_ROWS)),
        "psum_in_en":   unsigned(1),
        "window_words": unsigned(_bits(ifmap_depth)),
        "filter_words": unsigned(_bits(filter_depth)),
        "ring_cols":    unsigned(_bits(ifmap_depth)),
        "ring_words":   unsigned(_bits(ifmap_depth)),
        "step_words":   unsigned(_bits(ifmap_depth)),
        "mode":         unsigned(2),
    })


def pe_depths(params: AcceleratorParams) -> dict:
    """The scratchpad depths a :class:`PERowConfig` is checked and packed against."""
    return dict(ifmap_depth=params.ifmap_spad_depth, filter_depth=params.filter_spad_depth,
                psum_depth=params.psum_spad_depth)


def pe_depths_of(pe: "PE") -> dict:
    return dict(ifmap_depth=pe._ifmap_depth, filter_depth=pe._filter_depth,
                psum_depth=pe._psum_depth)


class _Phase(enum.Enum, shape=2):
    IDLE = 0
    LOAD = 1
    RUN = 2
    DRAIN = 3


class PE(wiring.Component):
    """A row-stationary PE with zero-gating and access counters.

    Program ``cfg`` (see :class:`PERowConfig`), pulse ``start`` while ``busy`` is low, then
    stream filters, ifmaps (and psums in); ``busy`` falls after the last psum has left.
    ``cfg`` must stay stable while ``busy``. ``events`` has one strobe per counted access in
    the current cycle (an array sums them instead of keeping per-PE counters); with
    ``counters=True`` the PE also keeps its own ``counters``, accumulated from reset.

    With ``registered_ready`` the ifmap ``ready`` and ``can_issue`` come from flip-flops: the
    next cycle's values are computed from this cycle's state for each outcome of the late
    events (a word completing a column, a slot completing an output step, a word leaving the
    output FIFO) and selected by them. The PE behaves the same cycle for cycle (a test runs
    both side by side); an array's handshakes across many PEs then start at registers.
    ``busy_next`` is the next cycle's ``busy`` (an array's OR over its PEs is a flip-flop).

    Elaborated for a platform whose ``family`` is ``"ice40"`` (the FPGA flow's, or an
    amaranth-boards iCE40 board), the filter scratchpad has a synchronous read port (its
    block RAM's own register); elsewhere a combinational port and a register with an
    initial value (the same cycles).
    """

    def __init__(self, *, data_width: int, psum_width: int, ifmap_depth: int,
                 filter_depth: int, psum_depth: int, counter_width: int = 32,
                 out_fifo_depth: int = 2, counters: bool = True, ws: bool = False,
                 os: bool = False, filter_ram: str = "auto", registered_ready: bool = False):
        if psum_width < 2 * data_width:
            raise ValueError(f"psum_width = {psum_width} is out of range: allowed "
                             f"{2 * data_width}..64")
        if out_fifo_depth < 1:
            raise ValueError(f"out_fifo_depth = {out_fifo_depth} is out of range: allowed >= 1")
        self._dw = data_width
        self._pw = psum_width
        self._ifmap_depth = ifmap_depth
        self._filter_depth = filter_depth
        self._psum_depth = psum_depth
        self._cw = counter_width
        self._out_fifo_depth = out_fifo_depth
        self._with_counters = counters
        self._ws, self._os = bool(ws), bool(os)
        if filter_ram not in RAM_STYLES:
            raise ValueError(f"filter_ram = {filter_ram!r} is invalid: allowed "
                             f"{', '.join(map(repr, RAM_STYLES))}")
        self._filter_ram = filter_ram
        self._registered_ready = bool(registered_ready)
        self.cfg_layout = pe_config_layout(ifmap_depth, filter_depth, psum_depth)
        ports = {
            "cfg":      In(self.cfg_layout),
            "start":    In(1),
            "busy":     Out(1),
            "filter":   In(stream.Signature(signed(data_width))),
            "ifmap":    In(stream.Signature(signed(data_width))),
            "psum_in":  In(stream.Signature(signed(psum_width))),
            "psum_out": Out(stream.Signature(signed(psum_width))),
            "events":   Out(data.StructLayout({n: unsigned(1) for n in PE_COUNTERS})),
        }
        if registered_ready:
            # the next cycle's ``busy``: an array keeps the OR over its PEs in a flip-flop
            ports["busy_next"] = Out(1)
        if ws or os:
            ports.update(go=In(1), can_issue=Out(1), active=In(1))
            if registered_ready:
                ports["can_next"] = Out(1)
        if ws:
            ports.update(product=Out(signed(2 * data_width)), product_valid=Out(1))
        if counters:
            ports["counters"] = Out(data.StructLayout({n: unsigned(counter_width)
                                                       for n in PE_COUNTERS}))
        super().__init__(ports)

    @classmethod
    def from_params(cls, params: AcceleratorParams, **kwargs) -> "PE":
        """A PE with the modes of ``params.dataflows``. With OS, whose outputs of one step
        leave all PEs of a column about together, the output FIFO is deep enough that the
        psum chain (one level per cycle) never stalls the MACs."""
        kwargs.setdefault("filter_ram", params.filter_spad_ram)
        kwargs.setdefault("ws", "ws" in params.dataflows)
        kwargs.setdefault("os", "os" in params.dataflows)
        if kwargs["os"]:
            kwargs.setdefault("out_fifo_depth",
                              max(2, min(params.rows, params.psum_spad_depth) + 1))
        return cls(data_width=params.data_width, psum_width=params.psum_width,
                   ifmap_depth=params.ifmap_spad_depth, filter_depth=params.filter_spad_depth,
                   psum_depth=params.psum_spad_depth, counter_width=params.counter_width,
                   **kwargs)

    @property
    def data_width(self):
        return self._dw

    @property
    def psum_width(self):
        return self._pw

    def pack_config(self, cfg: PERowConfig) -> int:
        """The ``cfg`` port's bit pattern (for Verilog benches)."""
        return cfg.pack(**pe_depths_of(self))

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        dw, pw = self._dw, self._pw
        rr = self._registered_ready

        # The configuration's "last index" values (cfg.x - 1): registered with
        # ``registered_ready`` (cfg is stable from the start pulse on; the first use is a
        # cycle later), so no adder on the configuration precedes a PE's comparators.
        def last(name):
            value = cfg[name] - 1
            if not rr:
                return value
            reg = Signal(value.shape(), name=f"{name}_m1")
            m.d.sync += reg.eq(value)
            return reg
        # ... and cfg.x - 2 (``registered_ready`` only; signed, so -1 matches no counter):
        # the flags "the next value is the last" compare a counter with it, not counter + 1
        # with cfg.x - 1 (no adder in front of the comparator)
        def last2(name):
            reg = Signal(signed(len(cfg[name]) + 1), name=f"{name}_m2")
            m.d.sync += reg.eq(cfg[name] - 2)
            return reg
        filter_words_m1, rows_m1, ring_words_m1 = (last("filter_words"), last("rows"),
                                                   last("ring_words"))
        channels_m1, filters_m1, window_words_m1, out_width_m1 = (
            last("channels"), last("filters"), last("window_words"), last("out_width"))
        if rr:
            filter_words_m2, filters_m2, window_words_m2, rows_m2, out_width_m2 = (
                last2("filter_words"), last2("filters"), last2("window_words"), last2("rows"),
                last2("out_width"))
            channels_m2 = last2("channels")

        # ---- storage ---------------------------------------------------------------------
        m.submodules.filter_spad = filter_spad = Memory(
            shape=signed(dw), depth=self._filter_depth, init=[],
            attrs=RAM_STYLES[self._filter_ram])
        f_wr = filter_spad.write_port()
        # The filter read: a combinational port and a register of our own (its value is
        # defined from reset on -- a sync port's data register has no initial value in the
        # Verilog, which Icarus would carry as X into a first, gated slot's product). Yosys
        # merges the register into the port (ECP5's LUT RAM or block RAM alike).
        family = getattr(platform, "family", None)
        f_ren = Signal()
        if family == "ice40":
            # the iCE40's block RAM: a synchronous port, whose register holds no initial
            # value (one of our own would be emulated in logic cells, which pico lacks)
            f_rd = filter_spad.read_port(domain="sync")
            f_data = f_rd.data
            m.d.comb += f_rd.en.eq(f_ren)
        else:
            f_rd = filter_spad.read_port(domain="comb")
            f_data = Signal(signed(dw))
            with m.If(f_ren):
                m.d.sync += f_data.eq(f_rd.data)
        m.submodules.ifmap_spad = ifmap_spad = Memory(
            shape=signed(dw), depth=self._ifmap_depth, init=[])
        i_wr = ifmap_spad.write_port()
        i_rd = ifmap_spad.read_port(domain="comb")
        psum_spad = Array(Signal(signed(pw), name=f"psum{n}") for n in range(self._psum_depth))
        m.submodules.out_fifo = out_fifo = fifo.SyncFIFO(
            width=pw, depth=self._out_fifo_depth)

        phase = Signal(_Phase)
        phase_n = Signal(_Phase)        # next phase (the registered handshakes look at it)
        phase_n0 = Signal(_Phase)       # phase_n unless an OS slot starts a filter reload
        m.d.comb += [phase_n0.eq(phase), phase_n.eq(phase_n0)]
        m.d.sync += phase.eq(phase_n)
        row = Signal.like(cfg.rows)
        fw_addr = Signal(range(self._filter_depth + 1))

        # Ifmap write side (ring of ring_cols columns x q channels).
        wcol = Signal(range(MAX_ROW_WIDTH + 2))     # column being received = columns complete
        wch = Signal.like(cfg.channels)
        wr_addr = Signal(range(self._ifmap_depth + 1))
        # Issue side.
        x = Signal(range(MAX_ROW_WIDTH + 2))        # output column being issued
        # x*stride + ring_cols and x*stride + taps, kept incrementally (no adder before the
        # comparators of the ifmap handshake and the issue condition)
        xs_ring = Signal(range(MAX_ROW_WIDTH + 2 * MAX_STRIDE + self._ifmap_depth + 2))
        xs_taps = Signal.like(xs_ring)
        base = Signal(range(self._ifmap_depth + 1))  # ring address of the window start
        k = Signal(range(self._ifmap_depth + 1))     # window index (s*q + c)
        rd_addr = Signal(range(self._ifmap_depth + 1))
        f = Signal(range((max(self._psum_depth, self._filter_depth) if self._ws
                          else self._psum_depth) + 1))
        # The modes this PE was built with (constant 0 otherwise, so their logic vanishes).
        # The mode codes are one-hot (WS = 1, OS = 2; 3 is refused by PERowConfig and by the
        # controller's descriptor check), so each flag is one configuration bit, not a
        # decode in front of every use.
        is_ws = Signal()
        is_os = Signal()
        assert (MODE_WS, MODE_OS) == (1, 2)
        if self._ws:
            m.d.comb += is_ws.eq(cfg.mode[0])
        if self._os:
            m.d.comb += is_os.eq(cfg.mode[1])
        f_addr = Signal(range(self._filter_depth + 1))

        x_all_issued = Signal()
        x_is_last = Signal()            # x == out_width - 1
        row_is_last = Signal()          # row == rows - 1
        # With ``registered_ready`` all three are flags set with the counters (at a row's
        # start from cfg, on each step from a compare with cfg.x - 2), so no comparator of
        # two 12- or 16-bit registers sits between the issue decision and the phase, the
        # ring and the handshakes.
        x_all_q, x_last_q, row_last_q = Signal(), Signal(), Signal()
        if rr:
            m.d.comb += [x_all_issued.eq(x_all_q), x_is_last.eq(x_last_q),
                         row_is_last.eq(row_last_q)]
        else:
            m.d.comb += [x_all_issued.eq(x == cfg.out_width), x_is_last.eq(x == out_width_m1),
                         row_is_last.eq(row == rows_m1)]
        # With ``registered_ready``: the next values of the counters the handshakes compare
        # (wcol + 1, xs_* + stride) and the "last filter / last window word" flags live in
        # flip-flops of their own, so every comparator of the next-cycle handshakes starts at
        # flip-flops and the late issue decision (``go``) only selects among their results
        # (with the adders in front of the comparators, the netlists had the selection
        # reaching the adders' inputs).
        wcol1 = Signal.like(wcol, init=1)
        xs_ring1 = Signal.like(xs_ring)
        xs_taps1 = Signal.like(xs_ring)
        last_f_q = Signal()
        last_k_q = Signal()
        # a row's start (after ``start`` and after every row): the ring's and taps' first
        # positions, and the flags for filter 0 and window word 0 (cfg holds the pass)
        row_start = [xs_ring.eq(cfg.ring_cols), xs_taps.eq(cfg.taps)]
        # the window start after the next output step, (base + step_words) mod ring_words,
        # kept a step ahead (``registered_ready``: no adder, comparator and subtractor
        # between the issue decision and the ring addresses)
        base_n = Signal.like(base)
        if rr:
            row_start += [x_all_q.eq(cfg.out_width == 0), x_last_q.eq(cfg.out_width == 1),
                          base_n.eq(cfg.step_words),
                          xs_ring1.eq(cfg.ring_cols + cfg.stride),
                          xs_taps1.eq(cfg.taps + cfg.stride),
                          last_f_q.eq(cfg.filters == 1), last_k_q.eq(cfg.window_words == 1)]
        # wcol == width (the row's columns all received) and wch == channels - 1 (the word
        # completes a column): flags too with ``registered_ready``
        wcol_end, wch_last = Signal(), Signal()
        wcol_end_q, wch_last_q = Signal(), Signal()
        if rr:
            row_start += [wcol_end_q.eq(cfg.width == 0), wch_last_q.eq(cfg.channels == 1)]
            m.d.comb += [wcol_end.eq(wcol_end_q), wch_last.eq(wch_last_q)]
        else:
            m.d.comb += [wcol_end.eq(wcol == cfg.width), wch_last.eq(wch == channels_m1)]
        row_done = Signal()
        m.d.comb += row_done.eq(x_all_issued & wcol_end)

        # ---- pipeline registers ----------------------------------------------------------
        v1 = Signal(); f1 = Signal.like(f); first1 = Signal(); last1 = Signal()
        zero1 = Signal(); i1 = Signal(signed(dw))
        v2 = Signal(); f2 = Signal.like(f); first2 = Signal(); last2 = Signal()
        zero2 = Signal(); prod2 = Signal(signed(2 * dw))

        stall = Signal()
        m.d.comb += stall.eq(v2 & last2 & ~out_fifo.w_rdy & ~is_ws)

        # ---- counters ----------------------------------------------------------------------
        def count(name, cond):
            m.d.comb += self.events[name].eq(cond)
            if self._with_counters:
                with m.If(cond):
                    m.d.sync += self.counters[name].eq(self.counters[name] + 1)

        # ---- control -----------------------------------------------------------------------
        # With ``registered_ready`` the filter network sees flip-flops: the PE's ready is
        # set with the next phase (f_rdy = phase == LOAD), and the last filter word's test
        # is a flag set with the address (fw_last = fw_addr == filter_words - 1), so the
        # array-wide AND of the filter handshake starts at flip-flops and a delivered word
        # reaches the phase through one flag.
        fw_last = Signal()
        if rr:
            f_rdy = Signal()
            m.d.sync += f_rdy.eq(phase_n == _Phase.LOAD)
            m.d.comb += self.filter.ready.eq(f_rdy)
        else:
            m.d.comb += [self.filter.ready.eq(phase == _Phase.LOAD),
                         fw_last.eq(fw_addr == filter_words_m1)]
        with m.Switch(phase):
            with m.Case(_Phase.IDLE):
                with m.If(self.start):
                    m.d.comb += phase_n0.eq(_Phase.LOAD)
                    m.d.sync += [fw_addr.eq(0), row.eq(0), *row_start]
                    if rr:
                        m.d.sync += [fw_last.eq(cfg.filter_words == 1),
                                     row_last_q.eq(cfg.rows == 1)]
            with m.Case(_Phase.LOAD):
                m.d.comb += [
                    f_wr.addr.eq(fw_addr),
                    f_wr.data.eq(self.filter.payload),
                    f_wr.en.eq(self.filter.valid),
                ]
                count("filter_writes", self.filter.valid)
                with m.If(self.filter.valid):
                    m.d.sync += fw_addr.eq(fw_addr + 1)
                    if rr:
                        m.d.sync += fw_last.eq(fw_addr == filter_words_m2)
                    with m.If(fw_last):
                        m.d.comb += phase_n0.eq(_Phase.RUN)
            with m.Case(_Phase.RUN):
                with m.If(row_done):
                    m.d.sync += [row.eq(row + 1), wcol.eq(0), wch.eq(0), wr_addr.eq(0),
                                 x.eq(0), base.eq(0), k.eq(0), rd_addr.eq(0),
                                 f.eq(0), f_addr.eq(0), *row_start]
                    if rr:
                        m.d.sync += [wcol1.eq(1), row_last_q.eq(row == rows_m2)]
                    with m.If(row_is_last):
                        m.d.comb += phase_n0.eq(_Phase.DRAIN)
            with m.Case(_Phase.DRAIN):
                with m.If(~v1 & ~v2 & ~out_fifo.r_rdy & ~self.psum_out.valid):
                    m.d.comb += phase_n0.eq(_Phase.IDLE)

        m.d.comb += self.busy.eq(phase != _Phase.IDLE)
        if rr:
            # (an OS reload only turns a running PE back to loading: phase_n0 says it)
            m.d.comb += self.busy_next.eq(phase_n0 != _Phase.IDLE)

        # ---- ifmap write side --------------------------------------------------------------
        in_run = phase == _Phase.RUN
        # OS: a PE reloading its filters keeps taking ifmap words into its ring
        in_ring = in_run | (is_os & (phase == _Phase.LOAD))
        accept = Signal()
        m.d.comb += accept.eq(in_ring & ~row_done & ~wcol_end &
                              (x_all_issued | (wcol < xs_ring)))
        acc_q = Signal()                # ``accept``, a cycle ahead from the next state
        take = Signal()
        m.d.comb += [
            self.ifmap.ready.eq(acc_q if rr else accept),
            take.eq(self.ifmap.ready & self.ifmap.valid),
            i_wr.addr.eq(wr_addr),
            i_wr.data.eq(self.ifmap.payload),
            i_wr.en.eq(take),
        ]
        count("ifmap_writes", take)
        with m.If(take):
            m.d.sync += wr_addr.eq(Mux(wr_addr == ring_words_m1, 0, wr_addr + 1))
            with m.If(wch_last):
                m.d.sync += [wch.eq(0), wcol.eq(wcol + 1)]
                if rr:
                    m.d.sync += [wcol1.eq(wcol1 + 1), wcol_end_q.eq(wcol1 == cfg.width),
                                 wch_last_q.eq(channels_m1 == 0)]
            with m.Else():
                m.d.sync += wch.eq(wch + 1)
                if rr:
                    m.d.sync += wch_last_q.eq(wch == channels_m2)

        # ---- issue -------------------------------------------------------------------------
        issue = Signal()
        ready = Signal()
        m.d.comb += ready.eq(in_run & ~x_all_issued & (wcol >= xs_taps))
        can_q = Signal()                # ``ready & ~stall``, a cycle ahead from the next state
        if self._ws or self._os:
            # WS, OS: slots issue in lockstep across the array (go = all active PEs ready)
            can = can_q if rr else ready & ~stall
            m.d.comb += issue.eq(can & (self.go | ~(is_ws | is_os)))
            if not rr:
                m.d.comb += self.can_issue.eq(can | ~self.active)
        else:
            m.d.comb += issue.eq(ready & ~stall)
        first_f = f == 0
        zero0 = Signal()
        m.d.comb += [
            i_rd.addr.eq(rd_addr),
            zero0.eq(Mux(first_f, i_rd.data == 0, zero1)),
            f_rd.addr.eq(f_addr),
            f_ren.eq(issue & ~zero0),
        ]
        count("ifmap_reads", issue & first_f)
        count("filter_reads", issue & ~zero0)
        count("macs", issue & ~zero0)
        count("gated_macs", issue & zero0)
        last_f = last_f_q if rr else f == filters_m1
        last_k = last_k_q if rr else k == window_words_m1
        with m.If(issue):
            with m.If(~last_f):
                m.d.sync += [f.eq(f + 1), f_addr.eq(f_addr + cfg.window_words)]
                if rr:
                    m.d.sync += last_f_q.eq(f == filters_m2)
            with m.Else():
                m.d.sync += [f.eq(0), f_addr.eq(k + 1), k.eq(k + 1),
                             rd_addr.eq(Mux(rd_addr == ring_words_m1, 0, rd_addr + 1))]
                if rr:
                    m.d.sync += [last_f_q.eq(filters_m1 == 0),
                                 last_k_q.eq(k == window_words_m2)]
                with m.If(last_k):
                    def wrap(b):
                        nb = b + cfg.step_words
                        return Mux(nb >= cfg.ring_words, nb - cfg.ring_words, nb)
                    if rr:
                        m.d.sync += [base.eq(base_n), rd_addr.eq(base_n),
                                     base_n.eq(wrap(base_n))]
                    else:
                        m.d.sync += [base.eq(wrap(base)), rd_addr.eq(wrap(base))]
                    m.d.sync += [k.eq(0), f_addr.eq(0), x.eq(x + 1)]
                    if rr:
                        m.d.sync += [xs_ring.eq(xs_ring1), xs_taps.eq(xs_taps1),
                                     xs_ring1.eq(xs_ring1 + cfg.stride),
                                     xs_taps1.eq(xs_taps1 + cfg.stride),
                                     last_k_q.eq(window_words_m1 == 0),
                                     x_all_q.eq(x_last_q), x_last_q.eq(x == out_width_m2)]
                    else:
                        m.d.sync += [xs_ring.eq(xs_ring + cfg.stride),
                                     xs_taps.eq(xs_taps + cfg.stride)]
                    with m.If(is_os & ~x_is_last):
                        # OS: the filters served this output only; load them again
                        m.d.comb += phase_n.eq(_Phase.LOAD)
                        m.d.sync += fw_addr.eq(0)
                        if rr:
                            m.d.sync += fw_last.eq(filter_words_m1 == 0)
            m.d.sync += [first1.eq(k == 0), last1.eq(last_k), f1.eq(f), zero1.eq(zero0)]
            with m.If(first_f):
                m.d.sync += i1.eq(i_rd.data)
        with m.If(~stall):
            m.d.sync += v1.eq(issue)

        if rr:
            # ---- registered handshakes ---------------------------------------------------
            # ``accept`` and ``ready & ~stall`` of the next cycle, computed from this cycle's
            # state for every outcome of the events that arrive late (an ifmap word that
            # completes a column, an issued slot that completes an output step, a word
            # leaving the output FIFO) and chosen by them at the end: the array's handshakes
            # then start at flip-flops, and the behaviour is the same cycle for cycle.
            cw = take & wch_last                           # wcol + 1
            sx = issue & last_f & last_k                   # x + 1, xs_* + stride
            row_reset = in_run & row_done                  # everything back to column 0
            start_ev = (phase == _Phase.IDLE) & self.start
            wcol_a = [wcol, wcol1]
            x_end = [x_all_issued, x_is_last]
            ring_b = [xs_ring, xs_ring1]
            taps_b = [xs_taps, xs_taps1]
            acc_ab = [[Signal(name=f"acc_next_{a}{b}") for b in range(2)] for a in range(2)]
            rdy_ab = [[Signal(name=f"rdy_next_{a}{b}") for b in range(2)] for a in range(2)]
            for a in range(2):
                for b in range(2):
                    m.d.comb += [
                        acc_ab[a][b].eq((~wcol_end if a == 0 else wcol1 != cfg.width) &
                                        (x_end[b] | (wcol_a[a] < ring_b[b]))),
                        rdy_ab[a][b].eq(~x_end[b] & (wcol_a[a] >= taps_b[b])),
                    ]
            # the next values for this cycle's slot not completing an output step (sx = 0)
            # and completing one (sx = 1: the PE is running, no row ends and none starts; an
            # OS PE goes on to reload its filters unless that was the row's last output);
            # each pair is kept apart from the late ``sx`` (``keep``), which chooses between
            # them in the flip-flops' last LUT
            acc_sel = [Mux(cw, acc_ab[1][b], acc_ab[0][b]) for b in range(2)]
            rdy_sel = [Mux(cw, rdy_ab[1][b], rdy_ab[0][b]) for b in range(2)]
            # after a row: column 0, output 0, the ring's first columns
            acc_reset = (cfg.width != 0) & ((cfg.out_width == 0) | (cfg.ring_cols != 0))
            rdy_reset = (cfg.out_width != 0) & (cfg.taps == 0)
            # at start: no word and no slot this cycle, the ring's first columns
            # (x is 0 at start; its flags follow the new configuration a cycle later)
            acc_start = (wcol != cfg.width) & ((cfg.out_width == 0) | (wcol < cfg.ring_cols))
            in_run_n0 = phase_n0 == _Phase.RUN
            in_ring_n0 = in_run_n0 | (is_os & (phase_n0 == _Phase.LOAD))
            in_run_n1 = ~(is_os & ~x_is_last)
            acc_n = [Signal(name=f"acc_n{b}", attrs={"keep": 1}) for b in range(2)]
            m.d.comb += [
                acc_n[0].eq(in_ring_n0 & Mux(row_reset, acc_reset,
                                             Mux(start_ev, acc_start, acc_sel[0]))),
                acc_n[1].eq(acc_sel[1]),
            ]
            m.d.sync += acc_q.eq(Mux(sx, acc_n[1], acc_n[0]))
            if self._ws or self._os:
                # the output FIFO: a stalled last slot waits for a word to leave; otherwise
                # the slot now in multiply stalls next if it is a last one and the FIFO will
                # be full (a word leaving this cycle always makes room)
                push = v2 & last2 & ~is_ws
                fills = Signal()
                m.d.comb += fills.eq(out_fifo.level + push == self._out_fifo_depth)
                stall_n = ~out_fifo.r_en & Mux(stall, 1, v1 & last1 & ~is_ws & fills)
                can_n = [Signal(name=f"can_n{b}", attrs={"keep": 1}) for b in range(2)]
                m.d.comb += [
                    can_n[0].eq(in_run_n0 & ~stall_n & Mux(row_reset, rdy_reset,
                                                           Mux(start_ev, 0, rdy_sel[0]))),
                    can_n[1].eq(in_run_n1 & ~stall_n & rdy_sel[1]),
                ]
                # ``can_issue`` has a flip-flop of its own with ``active`` in it
                can_out = Signal()
                m.d.sync += [can_q.eq(Mux(sx, can_n[1], can_n[0])),
                             can_out.eq(Mux(sx, can_n[1], can_n[0]) | ~self.active)]
                m.d.comb += self.can_issue.eq(can_out)
                # ``can_next``: the next cycle's ``can_issue`` judged without this cycle's
                # ifmap word and filter word (as if no word completed a column or a filter
                # load now; a word only ever makes a PE readier). It comes from the PE's
                # flip-flops and the local late events only -- no handshake -- so the array
                # can AND it over its PEs into the lockstep ``go`` flip-flop: a slot whose
                # window a word completed (or whose filters a load completed) in cycle t
                # issues in t + 2 instead of t + 1; back-to-back steps are not delayed.
                can_x = [Signal(name=f"can_x{b}") for b in range(2)]
                m.d.comb += [
                    can_x[0].eq(in_run & ~stall_n & Mux(row_done, ~row_is_last & rdy_reset,
                                                        rdy_ab[0][0])),
                    can_x[1].eq(in_run_n1 & ~stall_n & rdy_ab[0][1]),
                    self.can_next.eq(Mux(sx, can_x[1], can_x[0]) | ~self.active),
                ]

        # ---- multiply ----------------------------------------------------------------------
        # the accumulator's write-back to the psum scratchpad (a slot that is not its psum's
        # last, first or not gated) is decided here from the stage before: a last slot is
        # the only one that stalls, so a writing slot never waits, and the scratchpad's
        # enables start at a flip-flop
        # A gated slot's product is 0 without a multiplexer: its ifmap value i1 is 0 (zero1
        # is i1 == 0, both set when the value is read) and the filter register holds a
        # defined value (the last one read, or its reset value).
        w2 = Signal()
        w2_n = v1 & ~is_ws & ~last1 & (first1 | ~zero1)
        with m.If(~stall):
            m.d.sync += [v2.eq(v1), f2.eq(f1), first2.eq(first1), last2.eq(last1),
                         zero2.eq(zero1), prod2.eq(f_data * i1), w2.eq(w2_n)]

        # ---- accumulate --------------------------------------------------------------------
        total = Signal(signed(pw))
        go2 = v2 & ~stall
        writes = Signal()                # the accumulator goes back to the psum scratchpad
        m.d.comb += writes.eq(w2)
        with m.If(writes):
            m.d.sync += psum_spad[f2].eq(total)
        if rr:
            # the sum's old value is read a stage early (acc2, with the value being written
            # now forwarded when it is the same filter's), so the scratchpad's multiplexer
            # is not in front of the adder
            # The forwarding condition (the slot now in multiply is the same filter's as the
            # one writing now) is a flip-flop, set when the two stages load: f2 takes f1, f1
            # takes f if a slot issues (else keeps its value, which then equals f2's).
            acc2 = Signal(signed(pw))
            fwd = Signal()
            with m.If(~stall):
                m.d.sync += [acc2.eq(Mux(fwd, total, psum_spad[f1])),
                             fwd.eq(w2_n & Mux(issue, f == f1, 1))]
            m.d.comb += total.eq(Mux(first2, prod2, acc2 + prod2))
        else:
            m.d.comb += total.eq(Mux(first2, prod2, psum_spad[f2] + prod2))
        m.d.comb += [out_fifo.w_data.eq(total), out_fifo.w_en.eq(go2 & last2 & ~is_ws)]
        if self._ws:
            # WS: every product leaves as it is made
            m.d.comb += [self.product.eq(prod2), self.product_valid.eq(v2 & is_ws)]
        # psum scratchpad traffic: first tap writes, middle taps read and write (unless gated),
        # last tap reads (unless it is also the first).
        count("psum_reads", go2 & ~is_ws & ~first2 & (last2 | ~zero2))
        count("psum_writes", writes)

        # ---- output: add psum_in, registered ------------------------------------------------
        out = self.psum_out
        use_in = cfg.psum_in_en
        can_load = ~out.valid | out.ready
        both = out_fifo.r_rdy & (self.psum_in.valid | ~use_in)
        m.d.comb += [
            out_fifo.r_en.eq(can_load & both),
            self.psum_in.ready.eq(can_load & out_fifo.r_rdy & use_in),
        ]
        with m.If(can_load):
            m.d.sync += out.valid.eq(both)
            with m.If(both):
                m.d.sync += out.payload.eq(
                    out_fifo.r_data.as_signed() + Mux(use_in, self.psum_in.payload, 0))
        return m

