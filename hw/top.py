"""The accelerator: controller, DMA, global buffer, psum buffers, PE array, write-back.

Two engines share the work of each pass descriptor (hw/descriptor.py):

* the **loader** checks it and DMAs its filter block and ifmap tile into one half of the global
  buffer;
* the **executor** loads the filters into the array, computes, and writes the finished ofmap
  rows back to DRAM (on the last pass of an output tile).

The global buffer is double-buffered: while the executor runs pass k from one half, the loader
fills the other with pass k+1. Every phase's length follows from the descriptor and the DRAM's
timing, so the performance model can predict it, overlap included.

Dataflows (the descriptor's ``dataflow``; hardware only for those in ``params.dataflows``):

* **RS** -- filter load, then compute: the ifmap network streams the tile, the columns' psums
  go to the psum buffers (added to what a previous channel pass left there).
* **WS** -- the same filter load and ifmap stream; the PEs issue in lockstep and the array's
  column sums arrive every slot: each is added into the psum buffer at ``x*filters + f`` by a
  read-modify-write unit (read in the cycle the sum arrives, the block RAM's word registered
  the next, added and written the one after; the two writes a read can miss are forwarded,
  so back-to-back updates of one address see each other). The psum chains and
  the psum-buffer readers are idle.
* **OS** -- the first filter block loads as in RS; during compute the filter loader streams the
  block again, ``out_width - 1`` more times, from a second global-buffer read port (the ifmap
  stream keeps the first), each word multicast when every PE of its row group has finished
  its previous output. The PE configuration counts ``chans*filt_rows`` channels and the array
  matches ``filt_rows`` ifmap rows per PE.

Ports:

* ``desc`` -- descriptor stream in. The loader starts on a descriptor as soon as it is valid
  and consumes it (``ready``) when it hands the pass to the executor or refuses it: the source
  must hold ``payload`` stable while ``valid`` is high and ``ready`` low (the stream rule), and
  the accelerator keeps no copy of a descriptor it is still loading.
* ``busy``, ``error``, ``error_code``, ``passes_done`` -- status (``busy`` falls a cycle after
  the last pass ends, when every counter holds its final value). A descriptor the controller
  cannot execute is consumed and dropped, ``error`` goes high (sticky until reset) and
  ``error_code`` says why (:class:`hw.descriptor.DescError`).
* ``rd_req`` / ``rd_data`` / ``wr_req`` / ``wr_data`` -- the DMA master (word addresses,
  ``{addr, len}`` requests, one burst in flight at a time).
* ``cnt_sel`` / ``cnt_value`` -- counter read port (``TOP_COUNTERS`` order): ``cnt_value``
  is registered, the value of counter ``cnt_sel`` a cycle earlier.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .array import PEArray
from .check import DescriptorCheck
from .descriptor import ADDR_BITS, COUNT_BITS, DescError, descriptor_layout
from .params import AcceleratorParams
from .rlc import RLCDecoder, RLCEncoder
from .skid import SkidBuffer

__all__ = ["Accelerator", "TOP_COUNTERS", "built_counters", "dma_request_layout"]

TOP_COUNTERS = (
    "cycles", "dma_in_cycles", "fload_cycles", "compute_cycles", "writeback_cycles",
    "dram_rd_stall", "dram_wr_stall",
    "macs", "gated_macs", "filter_spad_reads", "filter_spad_writes",
    "ifmap_spad_reads", "ifmap_spad_writes", "psum_spad_reads", "psum_spad_writes",
    "glb_reads", "glb_writes", "psum_buf_reads", "psum_buf_writes",
    "dram_read_words", "dram_write_words", "gin_words", "passes",
    "overlap_cycles", "dma_stall_cycles",
)


def built_counters(params: AcceleratorParams) -> tuple[str, ...]:
    """The counters the hardware for ``params`` has (``params.counters``), in
    ``TOP_COUNTERS`` order."""
    if params.counters == "all":
        return TOP_COUNTERS
    return ("cycles", "passes")


# PE event name -> top counter name
_PE_TO_TOP = {
    "macs": "macs", "gated_macs": "gated_macs",
    "filter_reads": "filter_spad_reads", "filter_writes": "filter_spad_writes",
    "ifmap_reads": "ifmap_spad_reads", "ifmap_writes": "ifmap_spad_writes",
    "psum_reads": "psum_spad_reads", "psum_writes": "psum_spad_writes",
}


def dma_request_layout() -> data.StructLayout:
    return data.StructLayout({"addr": unsigned(ADDR_BITS), "len": unsigned(COUNT_BITS)})


class _Load(enum.Enum, shape=3):
    """The loader: checks a descriptor and fills its half of the global buffer."""
    IDLE = 0
    CHECK = 1
    WAIT = 2          # a sync descriptor waits for the executor to go idle
    DMA_FILT = 3
    DMA_IN = 4
    READY = 5         # loaded; handed to the executor as soon as it is idle
    IDX = 6           # compressed input: the channel's row-index burst
    RDATA = 7         # compressed input: the channel's rows through the RLC decoder


class _Exec(enum.Enum, shape=3):
    """The executor: runs a loaded pass on the array."""
    IDLE = 0
    SETUP = 1         # the array's IDs settle
    FLOAD = 2
    COMPUTE = 3
    WRITEBACK = 4
    DONE = 5


class Accelerator(wiring.Component):
    """The whole rowstat accelerator for one parameter set."""

    def __init__(self, params: AcceleratorParams):
        self._p = params
        self.desc_layout = descriptor_layout(params)
        super().__init__({
            "desc":        In(stream.Signature(self.desc_layout)),
            "busy":        Out(1),
            "error":       Out(1),
            "error_code":  Out(DescError),
            "passes_done": Out(32),
            "rd_req":      Out(stream.Signature(dma_request_layout())),
            "rd_data":     In(stream.Signature(unsigned(params.dram_width))),
            "wr_req":      Out(stream.Signature(dma_request_layout())),
            "wr_data":     Out(stream.Signature(unsigned(params.dram_width))),
            "cnt_sel":     In(range(len(TOP_COUNTERS))),
            "cnt_value":   Out(params.counter_width),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._p
        L, dw, pw = p.lanes, p.data_width, p.psum_width
        rows, cols = p.rows, p.cols

        # The loader works on the descriptor at the head of the ``desc`` stream and consumes
        # it (``ready``) only when it hands the pass to the executor (or refuses it), so it
        # keeps no copy of its own.
        dl = self.desc.payload
        d = Signal(self.desc_layout)        # the executor's descriptor
        lstate = Signal(_Load)
        xstate = Signal(_Exec)
        # the pass's hand-over waits for the loader's READY and an idle or finishing executor:
        # both as flip-flops, set with the states (go_l, go_x), so that the descriptor
        # registers' enable is one gate after flip-flops
        l_ready = Signal()
        x_free = Signal(init=1)
        # the executor in WRITEBACK, a flip-flop set with the state: the DRAM write request
        # and the compressed write-back's start values hang off it, not off a state decode
        x_wb = Signal()

        def go_l(state):
            return [lstate.eq(state), l_ready.eq(int(state == _Load.READY))]

        def go_x(state):
            return [xstate.eq(state), x_free.eq(int(state in (_Exec.IDLE, _Exec.DONE))),
                    x_wb.eq(int(state == _Exec.WRITEBACK))]
        lbuf = Signal()                     # global-buffer half of the loader's pass
        xbuf = Signal()                     # ... and of the executor's
        half = p.glb_pass_words
        # ``busy`` stays high a cycle after the last pass (the counters' last events, which
        # go through a register, have landed when it falls)
        busy_now = Signal()
        busy_q = Signal()
        m.d.comb += [busy_now.eq((lstate != _Load.IDLE) | (xstate != _Exec.IDLE)),
                     self.busy.eq(busy_now | busy_q)]
        m.d.sync += busy_q.eq(busy_now)

        m.submodules.array = array = PEArray(p)

        # ---- storage -------------------------------------------------------------------
        # the global buffer and the psum buffers are block RAM on an FPGA, always
        m.submodules.glb = glb = Memory(shape=unsigned(p.dram_width), depth=p.glb_words,
                                        init=[], attrs={"ram_style": "block"})
        glb_w = glb.write_port()
        glb_r = glb.read_port(domain="sync")
        # OS streams the filters again for every output while the ifmap network runs
        glb_rf = glb.read_port(domain="sync") if "os" in p.dataflows else None
        pb_w, pb_r = [], []
        for j in range(cols):
            mem = Memory(shape=signed(pw), depth=p.psum_buf_depth, init=[],
                         attrs={"ram_style": "block"})
            m.submodules[f"psum_buf{j}"] = mem
            pb_w.append(mem.write_port())
            # (WS's read-modify-write forwards its own recent writes; no transparency logic
            # after the block RAM's output)
            pb_r.append(mem.read_port(domain="sync"))

        # ---- counters --------------------------------------------------------------------
        # Counters the parameters leave out read 0 (their events are not counted).
        cw = p.counter_width
        built = built_counters(p)
        cnt = {name: Signal(cw, name=f"cnt_{name}") for name in built}
        # (registered: the multiplexer over counters spread across the design is a path of
        # its own, not one with the reader's logic)
        m.d.sync += self.cnt_value.eq(
            Array(cnt.get(n, Const(0, cw)) for n in TOP_COUNTERS)[self.cnt_sel])

        # Every event is registered before it is added (the logic that decides it and the
        # counter's carry chain are not one path), so it reaches the counter a cycle late;
        # ``busy`` falls a cycle after the last pass for that. A one-bit event may be counted
        # in several places: the last count() of a counter in a cycle wins. Several one-bit
        # events of a cycle (a list) are registered one by one and added up after their
        # registers, so the logic deciding each ends at its own flip-flop.
        inc = {}
        one = {}

        def count(name, amount):
            if name not in cnt:
                return
            if isinstance(amount, list):
                assert name not in inc and name not in one, name
                regs = [Signal(name=f"cnt_{name}_ev{i}") for i in range(len(amount))]
                m.d.sync += [reg.eq(bit) for reg, bit in zip(regs, amount)]
                inc[name] = _count_bits(regs)
                m.d.sync += cnt[name].eq(cnt[name] + inc[name])
                return
            amount = Value.cast(amount)
            if len(amount) == 1:
                assert name not in inc, name
                if name not in one:        # its register: see the end of elaborate()
                    one[name] = Signal(name=f"cnt_{name}_ev")
                m.d.comb += one[name].eq(amount)
            else:
                assert name not in inc and name not in one, name
                inc[name] = Signal(len(amount), name=f"cnt_{name}_inc")
                m.d.sync += [inc[name].eq(amount), cnt[name].eq(cnt[name] + inc[name])]

        count("cycles", busy_now)
        for ev, top_name in _PE_TO_TOP.items():
            count(top_name, array.events[ev])

        # ---- the descriptor check (hw/check.py) and the values it derives -----------------
        # The loader's check runs on ``dl``; the executor keeps a copy of the derived values
        # of its pass (``xd``), taken with ``d`` at the hand-off.
        m.submodules.check = check = DescriptorCheck(p)
        m.d.comb += [check.desc.eq(dl), check.run.eq(lstate == _Load.CHECK)]
        ld = check.derived
        xd = Signal.like(ld)
        n_idx = max(1, p.dram_width // 16)   # row-index entries per DRAM word
        # Compressed transport needs RLC words as wide as DRAM words (and 16-bit entries).
        has_rlc = p.rlc_transport
        if L & (L - 1):
            raise ValueError(f"lanes = {L} must be a power of two (dram_width / data_width)")
        qs, pqs, act_rows, padded = xd.qs, xd.pqs, xd.act_rows, xd.padded
        is_ws, is_os = xd.ws, xd.os

        # Values derived from the executor's pass (``d`` - 1 bounds, column enables),
        # registered: ``d`` is in place during set-up, so they are from the first filter-load
        # cycle on, and the executor's compares need no subtractor in front.
        def per_pass(value, name):
            value = Value.cast(value)
            reg = Signal(value.shape(), name=f"pp_{name}")
            m.d.sync += reg.eq(value)
            return reg

        ncols_m1 = per_pass(d.ncols - 1, "ncols_m1")
        p_valid_m1 = per_pass(d.p_valid - 1, "p_valid_m1")
        col_on = [per_pass(j < d.ncols, f"col_on{j}") for j in range(cols)]
        pp_pqs_m1 = per_pass(pqs - 1, "pqs_m1")
        pp_pqs_m2 = per_pass(pqs - 2, "pqs_m2")
        pp_ow_m2 = per_pass(d.out_width - 2, "ow_m2")
        pp_filt_words_m1 = per_pass(d.filt_words - 1, "filt_words_m1")
        pp_nrows_m1 = per_pass(d.nrows - 1, "nrows_m1")
        pp_vgroups_m1 = per_pass(d.vgroups - 1, "vgroups_m1")
        pp_chans_m1 = per_pass(d.chans - 1, "chans_m1")
        pp_w_last = per_pass(d.in_width + d.pad - 1, "w_last")
        # the values one step before the last: the generator's "last" flags are flip-flops,
        # set the step before a counter reaches its last value
        pp_nrows_m2 = per_pass(d.nrows - 2, "nrows_m2")
        pp_vgroups_m2 = per_pass(d.vgroups - 2, "vgroups_m2")
        pp_chans_m2 = per_pass(d.chans - 2, "chans_m2")
        pp_w_last_m1 = per_pass(d.in_width + d.pad - 2, "w_last_m1")
        # Flags kept a step ahead (the generator's and the filter loader's "last"/"more"
        # flags) are flip-flops on designs built for speed (``registered_networks``); on the
        # others they are the plain compares, and the updates below (``ahead``) are dropped:
        # ``pico`` fills the UP5K without room for them.
        fast = p.registered_networks

        def ahead(*updates):
            return list(updates) if fast else []
        pp_filters_m1 = per_pass(d.filters - 1, "filters_m1")
        pp_qs_m1 = per_pass(qs - 1, "qs_m1")
        pp_ncols_m2 = per_pass(d.ncols - 2, "ncols_m2")
        pp_p_valid_m2 = per_pass(d.p_valid - 2, "p_valid_m2")

        # ---- DMA read engine: one burst (dram addr, len) into the GLB at glb_dst -------
        # Designs built for speed take the read data through a skid buffer: the port's
        # ready is then a flip-flop, not the RLC decoder's logic (same cycles inside).
        rdd = self.rd_data
        if fast:
            m.submodules.rd_skid = rd_skid = SkidBuffer(unsigned(p.dram_width))
            wiring.connect(m, wiring.flipped(self.rd_data), rd_skid.i)
            rdd = rd_skid.o
        rd_go = Signal()                     # pulse: start the burst go_addr/go_len/go_dst
        go_addr = Signal(ADDR_BITS)
        go_len = Signal(COUNT_BITS)
        go_dst = Signal(range(p.glb_words + 1))
        rd_addr = Signal(ADDR_BITS)
        rd_len = Signal(COUNT_BITS)
        rd_dst = Signal(range(p.glb_words + 1))
        rd_left = Signal(COUNT_BITS)
        rd_busy = Signal()
        rd_phase = Signal()                  # 0: request, 1: data
        m.d.comb += [self.rd_req.payload.addr.eq(rd_addr), self.rd_req.payload.len.eq(rd_len)]
        with m.If(rd_go):
            m.d.sync += [rd_busy.eq(1), rd_phase.eq(0), rd_addr.eq(go_addr), rd_len.eq(go_len),
                         rd_left.eq(go_len), rd_dst.eq(go_dst)]
        with m.If(rd_busy & ~rd_phase):
            m.d.comb += self.rd_req.valid.eq(1)
            with m.If(self.rd_req.ready):
                m.d.sync += rd_phase.eq(1)
            with m.Else():
                count("dram_rd_stall", 1)
        # Modes: 0 raw words into the global buffer; 1 the row index of a compressed
        # channel (the start entry from the first beat, the end entry from the last);
        # 2 the compressed rows into the RLC decoder.
        rd_mode = Signal(2)
        go_mode = Signal(2)
        idx_start = Signal(16)
        # from the last beat: the data burst's length (end - start) and whether the entries
        # are corrupt (end <= start, or beyond the channel), registered, so the next burst's
        # start decision is a flip-flop, not two comparators after the beat's lane
        idx_len = Signal(16)
        idx_bad = Signal()
        rd_first = Signal()
        dec_take = Signal()                  # mode 2: the decoder (or the drain) takes a beat
        with m.If(rd_go):
            m.d.sync += [rd_mode.eq(go_mode), rd_first.eq(1)]
        idx_lanes = Array(rdd.payload[16 * e:16 * (e + 1)] for e in range(n_idx))
        with m.If(rd_busy & rd_phase):
            with m.Switch(rd_mode):
                with m.Case(0):
                    m.d.comb += [rdd.ready.eq(1),
                                 glb_w.addr.eq(rd_dst + Mux(lbuf, half, 0)),
                                 glb_w.data.eq(rdd.payload),
                                 glb_w.en.eq(rdd.valid)]
                    with m.If(rdd.valid):
                        count("glb_writes", 1)
                with m.Case(1):
                    m.d.comb += rdd.ready.eq(1)
                    with m.If(rdd.valid):
                        m.d.sync += rd_first.eq(0)
                        with m.If(rd_first):
                            m.d.sync += idx_start.eq(idx_lanes[dl.in_lane_a])
                        with m.If(rd_left == 1):
                            end = idx_lanes[dl.in_lane_b]
                            start = Mux(dl.in_a_zero, 0,
                                        Mux(rd_first, idx_lanes[dl.in_lane_a], idx_start))
                            m.d.sync += [idx_len.eq(end - start),
                                         idx_bad.eq((end <= start) | (end > dl.in_ch_stride))]
                with m.Case(2):
                    m.d.comb += rdd.ready.eq(dec_take)
            with m.If(rdd.valid & rdd.ready):
                count("dram_read_words", 1)
                m.d.sync += [rd_dst.eq(rd_dst + 1), rd_left.eq(rd_left - 1)]
                with m.If(rd_left == 1):
                    m.d.sync += rd_busy.eq(0)
            with m.Elif(~rdd.valid & ((rd_mode != 2) | dec_take)):
                count("dram_rd_stall", 1)

        # ---- RLC decoder and packer: compressed rows -> global-buffer words --------------
        rows_left = Signal(12)               # rows of the channel not yet started
        v_left = Signal(range(4097))         # values of the current row not yet out
        # rows_left == 0, v_left == 0 and v_left == 1 as flip-flops, set with the counters:
        # the decoder's handshake and the read stream's ready then start at flip-flops
        rows_zero = Signal(init=1)
        v_zero = Signal(init=1)
        v_one = Signal()
        pk_dst = Signal(range(p.glb_words + 1))
        pk_lane = Signal(range(L))
        pk = Signal(data.ArrayLayout(signed(dw), L))
        k_idx = Signal(ADDR_BITS)
        rows_done = Signal()
        if has_rlc:
            m.submodules.rlc_dec = dec = RLCDecoder.from_params(p)
            in_rdata = lstate == _Load.RDATA
            row_go = Signal()
            drain = Signal()
            dec_failed = Signal()
            dec_started = Signal()           # the decoder ran a row of this channel (its
            with m.If(row_go):               # error flag is from this channel then)
                m.d.sync += dec_started.eq(1)
            with m.If(lstate == _Load.IDX):
                m.d.sync += dec_started.eq(0)
            m.d.comb += [
                rows_done.eq(rows_zero & v_zero & ~dec.busy),
                dec_failed.eq(in_rdata & dec_started & dec.error & ~dec.busy),
                drain.eq(in_rdata & (rows_done | dec_failed)),
                row_go.eq(in_rdata & ~dec.busy & v_zero & ~rows_zero & ~drain),
                dec.count.eq(dl.in_width), dec.start.eq(row_go),
            ]
            # The burst's beats feed the decoder; once the burst is over, a bare last-word
            # flag stops a decoder that still wants words (a short burst) with an error.
            burst_on = rd_busy & rd_phase & (rd_mode == 2)
            m.d.comb += [
                dec.i.valid.eq(Mux(burst_on, rdd.valid & ~drain, in_rdata & ~rd_busy)),
                dec.i.payload.eq(Mux(burst_on, rdd.payload, 1 << (p.dram_width - 1))),
                dec_take.eq(drain | dec.i.ready),
            ]
            with m.If(row_go):
                m.d.sync += [v_left.eq(dl.in_width), rows_left.eq(rows_left - 1),
                             v_zero.eq(dl.in_width == 0), v_one.eq(dl.in_width == 1),
                             rows_zero.eq(rows_left == 1)]
            # a burst too short: flag it; the flag-only words let the rows end (as zeros)
            starved = in_rdata & ~rd_busy & dec.i.valid & dec.i.ready
            with m.If(starved):
                m.d.sync += [self.error.eq(1), self.error_code.eq(DescError.RLC)]
            with m.If(dec_failed | (drain & burst_on & rdd.valid)):
                # words that do not decode to the tile's rows: report, drain, go on
                m.d.sync += [self.error.eq(1), self.error_code.eq(DescError.RLC),
                             rows_left.eq(0), v_left.eq(0),
                             rows_zero.eq(1), v_zero.eq(1), v_one.eq(0)]
            m.d.comb += dec.o.ready.eq(1)
            with m.If(dec.o.valid):
                value = dec.o.payload
                m.d.sync += [v_left.eq(v_left - 1), v_zero.eq(v_one), v_one.eq(v_left == 2)]
                for lane in range(L):
                    with m.If(pk_lane == lane):
                        m.d.sync += pk[lane].eq(value)
                with m.If((pk_lane == L - 1) | v_one):
                    word = Cat(*[Mux(pk_lane == lane, value,
                                     Mux(pk_lane > lane, pk[lane], 0))[:dw]
                                 for lane in range(L)])
                    m.d.comb += [glb_w.addr.eq(pk_dst + Mux(lbuf, half, 0)),
                                 glb_w.data.eq(word), glb_w.en.eq(1)]
                    count("glb_writes", 1)
                    m.d.sync += [pk_dst.eq(pk_dst + 1), pk_lane.eq(0)]
                with m.Else():
                    m.d.sync += pk_lane.eq(pk_lane + 1)

        # ---- array programming (held for the whole pass) --------------------------------
        pe_cfg = array.cfg
        pe_q = xd.pe_q
        m.d.comb += [
            pe_cfg.taps.eq(d.taps), pe_cfg.channels.eq(pe_q), pe_cfg.filters.eq(d.filters),
            pe_cfg.stride.eq(d.stride), pe_cfg.width.eq(padded),
            pe_cfg.out_width.eq(d.out_width), pe_cfg.rows.eq(1), pe_cfg.psum_in_en.eq(0),
            pe_cfg.window_words.eq(qs), pe_cfg.filter_words.eq(pqs),
            pe_cfg.mode.eq(d.dataflow),
            # OS: row r is channel group r, and takes filt_rows ifmap rows (see hw/array.py)
            array.filt_rows.eq(Mux(is_os, 1, d.filt_rows)), array.stride.eq(d.stride),
            array.active_rows.eq(act_rows), array.ncols.eq(d.ncols),
            array.accumulate.eq(d.accumulate),
        ]
        if "os" in p.dataflows:
            m.d.comb += array.fold.eq(Mux(is_os, d.filt_rows, 1))
        # the ifmap ring's geometry: from the descriptor check, with the pass's other values
        m.d.comb += [pe_cfg.ring_cols.eq(xd.ring_cols), pe_cfg.ring_words.eq(xd.ring_words),
                     pe_cfg.step_words.eq(xd.step_words)]

        # ---- filter loader: GLB[filt_glb + n] -> filter network -------------------------
        # RS, WS: one block per pass (FLOAD). OS: the block again for every further output
        # column (fl_rep counts blocks), during COMPUTE, from the second read port.
        fl_run = Signal()
        fl_n = Signal(range(p.glb_words + 1))
        fl_idx = Signal(16)
        fl_g = Signal.like(array.filter.payload.g)
        fl_valid = Signal()
        fl_out_g = Signal.like(fl_g)
        fl_adv = Signal()
        fl_issue = Signal()
        fl_rep = Signal(range(4096 + 1))
        # Both global-buffer streams (filters here, ifmaps below) read the block RAM on
        # credit, a decision made from registers only, so the network's ready (an AND over
        # the PEs) never reaches the block RAMs' enables. With ``registered_networks``, the
        # block RAM's output (fl_valid) goes through a register into a FIFO beside it and from
        # there into the network's register (fn_*, see _queued_network_register): a word is
        # offered four cycles after its read, and every word after the first the cycle after
        # the one before it was taken. Two PEs (no network register): a read is issued when
        # fewer than two words are out (in the block RAM's output register and in a skid
        # register, fb_valid); the skid word, else the block RAM's output, goes straight to
        # the PEs.
        def os_choice(word, word_os):
            # the filter words: the second read port's in OS (when the design has OS)
            return Mux(is_os, word_os, word) if glb_rf is not None else word
        fl_empty = Signal()                  # no filter word read and not yet taken
        fl_more = Signal()                   # fl_n != filt_words, a flop (one compare less
        #                                      before the read's enable and the counters)
        fl_more_n = Signal()                 # fl_n + 1 != filt_words
        fl_idx_last = Signal()               # fl_idx == pqs - 1, a flop
        fl_rep_more = Signal()               # OS: fl_rep + 1 != out_width, a flop
        m.d.comb += [fl_issue.eq(fl_run & fl_adv & fl_more),
                     fl_more_n.eq(fl_n != pp_filt_words_m1)]
        if not fast:
            m.d.comb += [fl_more.eq(fl_n != d.filt_words), fl_idx_last.eq(fl_idx == pp_pqs_m1),
                         fl_rep_more.eq(fl_rep + 1 != d.out_width)]
        if fast:
            # (the stage takes both read ports' words; the OS choice comes after it)
            raw = dict(data=glb_r.data, g=fl_out_g)
            if glb_rf is not None:
                raw["data_os"] = glb_rf.data
            fl_can, fl_out_none, fn_valid, fn = _queued_network_register(
                m, "fn", fl_valid, raw, array.filter.ready, fl_issue,
                derive=lambda v: dict(
                    data=os_choice(v.data, v.data_os if glb_rf is not None else None), g=v.g))
            m.d.comb += [
                fl_adv.eq(fl_can),
                fl_empty.eq(fl_out_none),
                array.filter.valid.eq(fn_valid),
                array.filter.payload.g.eq(fn["g"]),
                array.filter.payload.data.as_value().eq(fn["data"]),
            ]
            m.d.sync += fl_valid.eq(fl_issue)
        else:
            fl_data = os_choice(glb_r.data, glb_rf.data if glb_rf is not None else None)
            fb_valid = Signal()
            fb_data = Signal(p.dram_width)
            fb_g = Signal.like(fl_g)
            fl_take = Signal()               # the word of fl_* or fb_* moves on
            m.d.comb += [
                fl_adv.eq(~(fl_valid & fb_valid)),
                fl_empty.eq(~fl_valid & ~fb_valid),
                array.filter.valid.eq(fl_valid | fb_valid),
                array.filter.payload.g.eq(Mux(fb_valid, fb_g, fl_out_g)),
                array.filter.payload.data.as_value().eq(Mux(fb_valid, fb_data, fl_data)),
                fl_take.eq(array.filter.valid & array.filter.ready),
            ]
            with m.If(Mux(fb_valid, fl_take, fl_valid & ~fl_take)):
                m.d.sync += [fb_valid.eq(fl_valid), fb_data.eq(fl_data), fb_g.eq(fl_out_g)]
            with m.If(fl_adv | fl_take):
                m.d.sync += fl_valid.eq(fl_issue)

        # ---- ifmap generator: GLB -> ifmap network --------------------------------------
        g_run = Signal()
        g_w = Signal(signed(14))             # unpadded column, -pad .. in_width+pad-1
        g_lane = Signal(range(L))
        g_c = Signal(8)
        g_s = Signal(8)
        g_h = Signal(12)
        g_k = Signal(12)                     # s*chans + c
        # g_h == nrows - 1, g_s == vgroups - 1, g_c == chans - 1, g_w == in_width + pad - 1
        last_h, last_s, last_c, last_w = (Signal(name=f"g_last_{x}") for x in "hscw")
        if not fast:
            m.d.comb += [last_h.eq(g_h == pp_nrows_m1), last_s.eq(g_s == pp_vgroups_m1),
                         last_c.eq(g_c == pp_chans_m1), last_w.eq(g_w == pp_w_last)]
        # The read address, kept incrementally: wword + c*ch_words + s*s_stride + h*row_words
        # (+ the executor's half), with its values at h = 0, s = 0 and c = 0 of the current
        # column, so each step is one addition from a register (no adder chain before the
        # block RAM's address).
        aw = len(glb_r.addr)
        g_a = Signal(aw)
        g_a_h0 = Signal(aw)
        g_a_s0 = Signal(aw)
        g_a_c0 = Signal(aw)
        fl_a = Signal(aw)                    # filt_glb + fl_n (+ half)
        xoff = Mux(xbuf, half, 0)
        fl_a0 = d.filt_glb + xoff
        g_done = Signal()
        o_valid = Signal()
        o_zero = Signal()
        o_lane = Signal(range(L))
        o_s = Signal(8)
        o_h = Signal(12)
        g_adv = Signal()
        g_issue = Signal()
        g_zero = Signal()
        # on credit, as the filter stream above: o_* is the block RAM's output stage, n_*
        # the network's register; between them the FIFO (registered networks) or, two PEs,
        # a skid register (b_*): n_* loads from the skid word, else the block RAM's output.
        # The block RAM's output reaches no PE directly: two PEs' first word comes two
        # cycles after its read (registered networks: four), then one word per cycle.
        g_empty = Signal()                   # no ifmap word read and not yet taken
        # a word is zero (padding, or rows/channels this pass does not hold) by its column,
        # row and channel; designs built for speed keep the three tests as flip-flops, set
        # with the counters (zw/zh/zk_of of each new value), so the block RAM's enable is
        # not behind the compares' carry chains
        def zw_of(w):
            return (w < 0) | (w >= d.in_width)

        def zh_of(h):
            return (h < d.row_lo) | (h >= d.row_hi)

        def zk_of(k):
            return k >= d.nch_valid

        g_zw, g_zh, g_zk = Signal(), Signal(), Signal()
        m.d.comb += g_issue.eq(g_run & ~g_done & g_adv)
        if fast:
            m.d.comb += g_zero.eq(g_zw | g_zh | g_zk)
        else:
            m.d.comb += g_zero.eq(zw_of(g_w) | zh_of(g_h) | zk_of(g_k))
        def lane_value(word, lane, zero):
            # the ifmap value: lane ``lane`` of a global-buffer word, or 0
            return Mux(zero, 0, Array(word[l * dw:(l + 1) * dw].as_signed()
                                      for l in range(L))[lane])
        if fast:
            # a large array takes each word's targets from registers, computed from the
            # word's tags as it is read (and kept with it through the FIFO and n_*)
            o_hit = Signal(p.rows * p.cols)
            with m.If(g_issue):
                m.d.sync += o_hit.eq(array.ifmap_hits(g_s, g_h))
            # (the stage takes the block RAM's word; the lane and zero choice come after it)
            g_can, g_none, n_valid, n = _queued_network_register(
                m, "n", o_valid,
                dict(word=glb_r.data, lane=o_lane, zero=o_zero, s=o_s, h=o_h, hit=o_hit),
                array.ifmap.ready, g_issue,
                derive=lambda v: dict(data=lane_value(v.word, v.lane, v.zero),
                                      s=v.s, h=v.h, hit=v.hit))
            m.d.comb += [g_adv.eq(g_can), g_empty.eq(g_none), array.ifmap_hit.eq(n["hit"])]
            m.d.sync += o_valid.eq(g_issue)
        else:
            o_data = Signal(signed(dw))
            m.d.comb += o_data.eq(lane_value(glb_r.data, o_lane, o_zero))
            b_valid = Signal()
            b_data = Signal(signed(dw))
            b_s = Signal.like(o_s)
            b_h = Signal.like(o_h)
            g_take = Signal()                # the word of o_* or b_* moves on to n_*
            fields = dict(data=Mux(b_valid, b_data, o_data), s=Mux(b_valid, b_s, o_s),
                          h=Mux(b_valid, b_h, o_h))
            n_valid, n, n_moves = _network_register(m, "n", o_valid | b_valid, fields,
                                                    array.ifmap.ready)
            m.d.comb += [g_adv.eq(~(o_valid & b_valid)), g_take.eq(n_moves),
                         g_empty.eq(~o_valid & ~b_valid & ~n_valid)]
            with m.If(Mux(b_valid, g_take, o_valid & ~g_take)):
                m.d.sync += [b_valid.eq(o_valid), b_data.eq(o_data), b_s.eq(o_s),
                             b_h.eq(o_h)]
            with m.If(g_adv | g_take):
                m.d.sync += o_valid.eq(g_issue)
        m.d.comb += [
            array.ifmap.valid.eq(n_valid),
            array.ifmap.payload.s.eq(n["s"]),
            array.ifmap.payload.h.eq(n["h"]),
            array.ifmap.payload.data.eq(n["data"]),
        ]

        # GLB read port: the filter loader and the generator never run together (but in OS,
        # whose filter loader has its own port).
        fl_on_r = fl_run & ~is_os
        with m.If(fl_on_r):
            m.d.comb += [glb_r.addr.eq(fl_a), glb_r.en.eq(fl_issue)]
        with m.Else():
            m.d.comb += [glb_r.addr.eq(g_a), glb_r.en.eq(g_issue & ~g_zero)]
        if glb_rf is not None:
            m.d.comb += [glb_rf.addr.eq(fl_a),
                         glb_rf.en.eq(fl_issue & is_os)]
        count("glb_reads", [fl_issue, ~fl_on_r & g_issue & ~g_zero])

        with m.If(fl_issue):
            m.d.sync += [fl_n.eq(fl_n + 1), fl_a.eq(fl_a + 1), fl_out_g.eq(fl_g),
                         *ahead(fl_more.eq(fl_more_n))]
            with m.If(fl_idx_last):
                m.d.sync += [fl_idx.eq(0), fl_g.eq(fl_g + 1),
                             *ahead(fl_idx_last.eq(pp_pqs_m1 == 0))]
            with m.Else():
                m.d.sync += [fl_idx.eq(fl_idx + 1), *ahead(fl_idx_last.eq(fl_idx == pp_pqs_m2))]
            with m.If(is_os & (xstate == _Exec.COMPUTE) & ~fl_more_n & fl_rep_more):
                # OS: the next output column's copy of the block
                m.d.sync += [fl_n.eq(0), fl_a.eq(fl_a0), fl_idx.eq(0), fl_g.eq(0),
                             fl_rep.eq(fl_rep + 1),
                             *ahead(fl_more.eq(1), fl_idx_last.eq(pp_pqs_m1 == 0),
                                    fl_rep_more.eq(fl_rep != pp_ow_m2))]

        count("gin_words", g_issue)
        with m.If(g_issue):
            m.d.sync += [o_zero.eq(g_zero), o_lane.eq(g_lane), o_s.eq(g_s), o_h.eq(g_h)]
            # for w': for c: for s: for h
            h1 = (g_h + 1)[:len(g_h)]
            m.d.sync += [g_h.eq(h1), g_a.eq(g_a + d.row_words),
                         *ahead(last_h.eq(g_h == pp_nrows_m2), g_zh.eq(zh_of(h1)))]
            with m.If(last_h):
                a_s = g_a_h0 + xd.s_stride
                k_s = (g_k + d.chans)[:len(g_k)]
                m.d.sync += [g_h.eq(0), g_s.eq(g_s + 1), g_a_h0.eq(a_s), g_a.eq(a_s),
                             g_k.eq(k_s),
                             *ahead(last_h.eq(pp_nrows_m1 == 0),
                                    last_s.eq(g_s == pp_vgroups_m2),
                                    g_zh.eq(zh_of(0)), g_zk.eq(zk_of(k_s)))]
                with m.If(last_s):
                    a_c = g_a_s0 + d.ch_words
                    m.d.sync += [g_s.eq(0), g_k.eq(g_c + 1), g_c.eq(g_c + 1),
                                 g_a_s0.eq(a_c), g_a_h0.eq(a_c), g_a.eq(a_c),
                                 *ahead(last_s.eq(pp_vgroups_m1 == 0),
                                        last_c.eq(g_c == pp_chans_m2),
                                        g_zk.eq(zk_of(g_c + 1)))]
                    with m.If(last_c):
                        next_word = (g_w >= 0) & (g_lane == L - 1)
                        a_w = g_a_c0 + next_word
                        w1 = (g_w + 1)[:len(g_w)].as_signed()
                        m.d.sync += [g_c.eq(0), g_k.eq(0), g_w.eq(w1),
                                     g_a_c0.eq(a_w), g_a_s0.eq(a_w), g_a_h0.eq(a_w),
                                     g_a.eq(a_w),
                                     *ahead(last_c.eq(pp_chans_m1 == 0),
                                            last_w.eq(g_w == pp_w_last_m1),
                                            g_zk.eq(zk_of(0)), g_zw.eq(zw_of(w1)))]
                        with m.If(g_w >= 0):
                            with m.If(g_lane == L - 1):
                                m.d.sync += g_lane.eq(0)
                            with m.Else():
                                m.d.sync += g_lane.eq(g_lane + 1)
                        with m.If(last_w):
                            m.d.sync += g_done.eq(1)

        # ---- psum buffers: readers (psum_in) and writers (psum_out) per column ----------
        pf = xd.pf                                    # filters x out_width
        wb_active = Signal()
        wb_col = Signal(range(cols))
        wb_raddr = Signal(range(p.psum_buf_depth + 1))
        wb_ren = Signal()
        pin_run = Signal()
        wr_cnt = [Signal(range(p.psum_buf_depth + 1), name=f"pb_wcnt{j}") for j in range(cols)]
        for j in range(cols):
            # writer
            m.d.comb += [
                array.psum_out[j].ready.eq(1),
                pb_w[j].addr.eq(wr_cnt[j]), pb_w[j].data.eq(array.psum_out[j].payload),
                pb_w[j].en.eq(array.psum_out[j].valid),
            ]
            with m.If(array.psum_out[j].valid):
                m.d.sync += wr_cnt[j].eq(wr_cnt[j] + 1)
            # reader (psum_in), same pattern as the GLB readers, and a register after the
            # block RAM's (slow) output: the PE adds psum_in in its output stage
            r_n = Signal(range(p.psum_buf_depth + 1), name=f"pb_rcnt{j}")
            r_valid = Signal(name=f"pb_rvalid{j}")
            r_adv = Signal(name=f"pb_radv{j}")
            r_issue = Signal(name=f"pb_rissue{j}")
            q_valid = Signal(name=f"pb_qvalid{j}")
            q_data = Signal(signed(pw), name=f"pb_qdata{j}")
            q_adv = Signal(name=f"pb_qadv{j}")
            # (fast designs: through a skid buffer, so the array's psum_in.ready -- the bottom
            # PE's output handshake -- does not reach the block RAM's enable and address;
            # a word passes straight through while the array takes it: same cycles)
            pin = array.psum_in[j]
            if fast:
                sk = m.submodules[f"pb_skid{j}"] = SkidBuffer(signed(pw))
                wiring.connect(m, sk.o, array.psum_in[j])
                pin = sk.i
            m.d.comb += [
                q_adv.eq(~q_valid | pin.ready),
                r_adv.eq(~r_valid | q_adv),
                r_issue.eq(pin_run & r_adv & (r_n != pf) & col_on[j]),
                pin.valid.eq(q_valid),
                pin.payload.eq(q_data),
            ]
            with m.If(q_adv):
                m.d.sync += [q_valid.eq(r_valid), q_data.eq(pb_r[j].data)]
            with m.If(wb_active):
                m.d.comb += [pb_r[j].addr.eq(wb_raddr), pb_r[j].en.eq(wb_ren & (wb_col == j))]
            with m.Else():
                m.d.comb += [pb_r[j].addr.eq(r_n), pb_r[j].en.eq(r_issue)]
            with m.If(r_issue):
                m.d.sync += r_n.eq(r_n + 1)
            with m.If(r_adv):
                m.d.sync += r_valid.eq(r_issue)
            with m.If(xstate == _Exec.SETUP):
                m.d.sync += [r_n.eq(0), r_valid.eq(0), q_valid.eq(0), wr_cnt[j].eq(0)]
        # ---- WS: the columns' sums are added into the psum buffers (read-modify-write) ----
        # Slots arrive in the PEs' order (for x: for k < q*S: for f), so the address is
        # x*filters + f; the first slot of an output writes unless the pass accumulates.
        ws_busy = Const(0)
        if "ws" in p.dataflows:
            ws_f = Signal(8)
            ws_k = Signal(range(p.ifmap_spad_depth + 1))
            ws_base = Signal(range(p.psum_buf_depth + 256))
            rmw_valid = Signal()
            rmw_first = Signal()
            rmw_addr = Signal(range(p.psum_buf_depth + 256))
            rmw_sum = [Signal(signed(pw), name=f"rmw_sum{j}") for j in range(cols)]
            first_now = (ws_k == 0) & ~d.accumulate
            ws_addr = ws_base + ws_f
            with m.If(array.ws_valid):
                m.d.sync += [rmw_addr.eq(ws_addr), rmw_first.eq(first_now),
                             ws_f.eq(ws_f + 1)]
                with m.If(ws_f == pp_filters_m1):
                    m.d.sync += [ws_f.eq(0), ws_k.eq(ws_k + 1)]
                    with m.If(ws_k == pp_qs_m1):
                        m.d.sync += [ws_k.eq(0), ws_base.eq(ws_base + d.filters)]
            # Three stages: the read (ws_valid), the block RAM's output (rmw_*, registered
            # into w_raw with nothing in between), the add and the write (w_*). The read of a
            # slot misses the writes of the two slots before it when they come back to back
            # (the write of the previous one is a cycle later, the one before that in the
            # same cycle), so those two values are forwarded instead: the one being written
            # now (w_*) and the one written a cycle ago (l_*).
            w_valid = Signal()
            w_first = Signal()
            w_addr = Signal.like(rmw_addr)
            l_valid = Signal()
            l_addr = Signal.like(rmw_addr)
            m.d.sync += [rmw_valid.eq(array.ws_valid), w_valid.eq(rmw_valid),
                         w_first.eq(rmw_first), w_addr.eq(rmw_addr),
                         l_valid.eq(w_valid), l_addr.eq(w_addr)]
            fwd_w = w_valid & (w_addr == rmw_addr)
            fwd_l = l_valid & (l_addr == rmw_addr)
            w_fwd = Signal()
            m.d.sync += w_fwd.eq(fwd_w | fwd_l)
            for j in range(cols):
                w_sum = Signal(signed(pw), name=f"ws_wsum{j}")
                w_raw = Signal(signed(pw), name=f"ws_wraw{j}")      # the block RAM's word
                w_fval = Signal(signed(pw), name=f"ws_wfval{j}")    # ... or the forwarded one
                w_data = Signal(signed(pw), name=f"ws_wdata{j}")
                l_data = Signal(signed(pw), name=f"ws_ldata{j}")
                m.d.comb += w_data.eq(Mux(w_first, 0, Mux(w_fwd, w_fval, w_raw)) + w_sum)
                m.d.sync += [rmw_sum[j].eq(array.ws_sum[j]), w_sum.eq(rmw_sum[j]),
                             w_raw.eq(pb_r[j].data), w_fval.eq(Mux(fwd_w, w_data, l_data)),
                             l_data.eq(w_data)]
                on = col_on[j]
                with m.If(is_ws & ~wb_active):
                    m.d.comb += [pb_r[j].addr.eq(ws_addr),
                                 pb_r[j].en.eq(array.ws_valid & ~first_now & on)]
                with m.If(is_ws):
                    m.d.comb += [pb_w[j].addr.eq(w_addr), pb_w[j].data.eq(w_data),
                                 pb_w[j].en.eq(w_valid & on)]
            with m.If(xstate == _Exec.SETUP):
                m.d.sync += [ws_f.eq(0), ws_k.eq(0), ws_base.eq(0)]
            ws_busy = array.ws_valid | rmw_valid | w_valid
        count("psum_buf_writes", [pb_w[j].en for j in range(cols)])
        pin_reads = []
        for j in range(cols):
            pin_reads.append(pb_r[j].en & ~wb_active)
        count("psum_buf_reads", pin_reads + [wb_ren])
        writers_done = Cat(*[(wr_cnt[j] == pf) | ~col_on[j] for j in range(cols)]).all()
        writers_done = Mux(is_ws, ~ws_busy, writers_done)

        # ---- write-back: psum buffer -> requantize -> pack -> DRAM -----------------------
        wb_f = Signal(8)
        wb_x = Signal(range(4096 + L))           # lane index within the row
        wb_last_x = Signal.like(wb_x)
        wb_addr = Signal(ADDR_BITS)
        wb_fbase = Signal(ADDR_BITS)
        # the plain write-back's "last column" / "last filter" tests and its next filter's
        # base address (wb_fbase + out_ch_stride): flip-flops kept a step ahead on designs
        # built for speed (the row-done test then selects among registers)
        wb_fbase_n = Signal(ADDR_BITS)
        wb_col_last_q, wb_f_last_q = Signal(), Signal()
        wb_last_col, wb_last_f = Signal(), Signal()
        if fast:
            m.d.comb += [wb_last_col.eq(wb_col_last_q), wb_last_f.eq(wb_f_last_q)]
        else:
            m.d.comb += [wb_last_col.eq(wb_col == ncols_m1), wb_last_f.eq(wb_f == p_valid_m1)]
        wb_req_pending = Signal()
        wb_issuing = Signal()                    # the row's lanes are being issued
        pack = Signal(data.ArrayLayout(signed(dw), L))
        beat_valid = Signal()
        beat = Signal(p.dram_width)
        stall_wb = Signal()

        # The requantizer: a pipeline shared by both write-backs, one lane per stage, all
        # stages moving together unless ``rq_stall``. Stage 1 is the psum buffer's output;
        # 2 registers it (the block RAM's output is slow, nothing else goes in that path);
        # 3 shifts; 4 rounds and saturates (``rq_sat``). Each lane carries its tags along.
        rq_issue = Signal()                      # a lane enters stage 1 (its read issued)
        rq_stall = Signal()
        rq_v = [Signal(name=f"rq_valid{n}") for n in range(1, 5)]
        rq_real = [Signal(name=f"rq_real{n}") for n in range(1, 5)]   # x < out_width
        rq_lane = [Signal(range(L), name=f"rq_lane{n}") for n in range(1, 5)]
        rq_lastlane = [Signal(name=f"rq_lastlane{n}") for n in range(1, 5)]
        rq_busy = Signal()                       # a lane in any stage
        m.d.comb += rq_busy.eq(Cat(*rq_v).any())
        rq_acc = Signal(signed(pw))
        rq_sh = Signal(signed(pw))
        rq_rb = Signal()
        rq_sat = Signal(signed(dw))
        # round half up of acc >> shift: (acc >> shift) + bit shift-1 of acc (0 for shift 0)
        lo, hi = -(1 << (dw - 1)), (1 << (dw - 1)) - 1
        floor = Mux(d.relu, 0, lo)
        rounded = Signal(signed(pw + 1))
        m.d.comb += rounded.eq(rq_sh + rq_rb)
        with m.If(~rq_stall):
            m.d.sync += [rq_v[0].eq(rq_issue),
                         rq_acc.eq(Array(pb_r[j].data for j in range(cols))[wb_col]),
                         rq_sh.eq(rq_acc >> d.shift),
                         rq_rb.eq(Cat(Const(0, 1), rq_acc).bit_select(d.shift, 1)),
                         rq_sat.eq(Mux(rq_real[2], Mux(rounded > hi, hi,
                                                       Mux(rounded < floor, floor, rounded)),
                                       0))]
            for n in range(1, 4):
                m.d.sync += [rq_v[n].eq(rq_v[n - 1]), rq_real[n].eq(rq_real[n - 1]),
                             rq_lane[n].eq(rq_lane[n - 1]),
                             rq_lastlane[n].eq(rq_lastlane[n - 1])]
        m.d.comb += [
            stall_wb.eq(rq_v[3] & rq_lastlane[3] & beat_valid & ~self.wr_data.ready),
            self.wr_data.valid.eq(beat_valid), self.wr_data.payload.eq(beat),
            self.wr_req.payload.addr.eq(wb_addr), self.wr_req.payload.len.eq(d.out_row_words),
            self.wr_req.valid.eq(wb_req_pending),
        ]
        # Cycles the write-back loses to DRAM: the request waits, the lane pipeline waits for
        # the beat register, or the row's last beat waits with nothing else in flight. A beat
        # waiting while the next lanes are still being read costs nothing and is not counted.
        count("dram_wr_stall", (wb_req_pending & ~self.wr_req.ready) | stall_wb |
              (beat_valid & ~self.wr_data.ready & ~wb_issuing & ~rq_busy))
        with m.If(beat_valid & self.wr_data.ready):
            m.d.sync += beat_valid.eq(0)
            count("dram_write_words", 1)
        with m.If(wb_req_pending & self.wr_req.ready):
            m.d.sync += [wb_req_pending.eq(0), wb_issuing.eq(1), wb_x.eq(0)]

        m.d.comb += wb_ren.eq(wb_issuing & ~stall_wb & (wb_x < d.out_width))
        # address of psum x*filters + f, kept incrementally
        wb_pa = Signal(range(p.psum_buf_depth + 64))
        m.d.comb += wb_raddr.eq(wb_pa)
        with m.If(~d.out_rlc):
            m.d.comb += [rq_stall.eq(stall_wb), rq_issue.eq(wb_issuing & ~stall_wb)]
        with m.If(wb_issuing & ~stall_wb):
            m.d.sync += [
                rq_real[0].eq(wb_x < d.out_width),
                rq_lane[0].eq(wb_x[:max(1, (L - 1).bit_length())] if L > 1 else 0),
                rq_lastlane[0].eq((wb_x & (L - 1)) == L - 1),
                wb_x.eq(wb_x + 1), wb_pa.eq(wb_pa + d.filters),
            ]
            with m.If(wb_x == wb_last_x):
                m.d.sync += wb_issuing.eq(0)
        with m.If(rq_v[3] & ~stall_wb & ~d.out_rlc):
            value, lane = rq_sat, rq_lane[3]
            for l in range(L):
                with m.If(lane == l):
                    m.d.sync += pack[l].eq(value)
            with m.If(rq_lastlane[3]):
                # the beat is free here (stall_wb covers the other case)
                full = Cat(*[Mux(lane == l, value, pack[l])[:dw]
                             for l in range(L)])
                m.d.sync += [beat.eq(full), beat_valid.eq(1)]
        m.d.sync += wb_last_x.eq(d.out_row_words * L - 1)

        # ---- compressed write-back: psum buffer -> requantize -> RLC encoder -> DRAM -----
        # Per filter f < p_valid: each row j < ncols through the encoder, every word its own
        # one-word write at the filter plane's running offset; then the rows' ends as one
        # index burst (gen/compress.py). Offsets carry over between the passes of a plane.
        c_phase = Signal(2)                  # 0 row start, 1 row, 2 index request, 3 index data
        c_f = Signal(8)
        c_j = Signal(range(cols + 1))
        c_x = Signal(range(4097))
        c_pa = Signal(range(p.psum_buf_depth + 256))
        c_off = Signal(16)
        c_daddr = Signal(ADDR_BITS)
        c_iaddr = Signal(ADDR_BITS)
        c_i = Signal(8)
        c_i_last = Signal()                  # c_i == nidx - 1, set with c_i (no adder and
        #                                      compare before the plane's last beat)
        offs = Array(Signal(16, name=f"rlc_off{f}") for f in range(p.psum_spad_depth))
        ends = Array(Signal(16, name=f"rlc_end{j}") for j in range(cols))
        a_valid = Signal()
        a_addr = Signal(ADDR_BITS)
        a_word = Signal(p.dram_width)
        e_bits = max(0, n_idx.bit_length() - 1)
        nidx = Signal(8)
        m.d.sync += nidx.eq((d.ncols + n_idx - 1) >> e_bits)
        if has_rlc:
            m.submodules.rlc_enc = enc = RLCEncoder.from_params(p)
            c_on = x_wb & d.out_rlc
            issue = Signal()
            m.d.comb += [
                enc.count.eq(d.out_width),
                enc.i.valid.eq(rq_v[3] & d.out_rlc), enc.i.payload.eq(rq_sat),
                issue.eq(c_on & (c_phase == 1) & (c_x != d.out_width) & ~rq_stall),
                ]
            idx_req_on = c_on & (c_phase == 2) & ~a_valid
            with m.If(d.out_rlc):
                m.d.comb += [wb_ren.eq(issue), wb_raddr.eq(c_pa),
                             rq_issue.eq(issue), rq_stall.eq(rq_v[3] & ~enc.i.ready)]
            with m.If(issue):
                m.d.sync += [c_x.eq(c_x + 1), c_pa.eq(c_pa + d.filters), rq_real[0].eq(1)]
            # One word stage: its request and its beat go in the same cycle (the beat waits
            # for the request, never the other way round), so words leave at one per cycle.
            # A word is in the stage only during a compressed pass's rows (the index request
            # waits for it to leave), so its request and beat drive the write ports without
            # the pass's mode in their logic. A skid register (a1_*) takes the encoder's word
            # when the stage is full: the encoder's ready is a flip-flop (the DRAM's ready
            # stays out of the encoder and the requantizer), and a word still moves on the
            # cycle after the one before it.
            a_req_done = Signal()
            a_req = Signal()
            a_beat = Signal()
            beat_go = Signal()
            a1_valid = Signal()
            a1_word = Signal.like(a_word)
            a1_addr = Signal.like(a_addr)
            enc_take = Signal()
            m.d.comb += [
                a_req.eq(a_valid & ~a_req_done),
                a_beat.eq(a_valid & (a_req_done | self.wr_req.ready)),
                beat_go.eq(a_beat & self.wr_data.ready),
                enc.o.ready.eq(~a1_valid),
                enc_take.eq(enc.o.valid & ~a1_valid),
            ]
            with m.If(enc_take):
                m.d.sync += c_off.eq(c_off + 1)
            with m.If(~a_valid | beat_go):
                m.d.sync += [a_valid.eq(a1_valid | enc_take), a1_valid.eq(0),
                             a_word.eq(Mux(a1_valid, a1_word, enc.o.payload)),
                             a_addr.eq(Mux(a1_valid, a1_addr, c_daddr + c_off))]
            with m.Elif(enc_take):
                m.d.sync += a1_valid.eq(1)
            # the skid register follows the encoder while it is empty (read only when full):
            # its enable is a flip-flop, not the DRAM's ready
            with m.If(~a1_valid):
                m.d.sync += [a1_word.eq(enc.o.payload), a1_addr.eq(c_daddr + c_off)]
            with m.If(a_valid):
                m.d.comb += [self.wr_req.valid.eq(a_req),
                             self.wr_req.payload.addr.eq(a_addr),
                             self.wr_req.payload.len.eq(1),
                             self.wr_data.valid.eq(a_beat),
                             self.wr_data.payload.eq(a_word)]
            with m.If(a_req & self.wr_req.ready):
                m.d.sync += a_req_done.eq(1)
            with m.If(beat_go):
                m.d.sync += a_req_done.eq(0)
                count("dram_write_words", 1)
            # Cycles the compressed write-back loses to DRAM: a value waits because the
            # encoder's output is held by a word the DRAM has not taken, the row's last word
            # waits for the same reason, or the index waits for the last data word.
            # (Under c_on only: a counter's last update in a cycle wins, and the plain
            # write-back counts its own stalls above.)
            with m.If(c_on):
                count("dram_wr_stall",
                      ((c_phase == 1) & rq_v[3] & ~enc.i.ready) |
                      ((c_phase == 1) & (c_x == d.out_width) & ~rq_busy & enc.o.valid &
                       ~enc.o.ready) |
                      ((c_phase == 2) & a_valid))
            with m.If(idx_req_on):
                m.d.comb += [self.wr_req.valid.eq(1), self.wr_req.payload.addr.eq(c_iaddr),
                             self.wr_req.payload.len.eq(nidx)]
                count("dram_wr_stall", ~self.wr_req.ready)
            with m.If(c_on & (c_phase == 3)):
                # entry e of index word c_i is column c_i*n_idx + e (n_idx is a power of
                # two: no adder); every word but the row's last is full, and the last
                # holds columns up to ncols - 1 (no comparator of the column with ncols)
                entries = []
                for e in range(n_idx):
                    k = Signal(8, name=f"rlc_idx_k{e}")
                    m.d.comb += k.eq(Cat(Const(e, e_bits), c_i))
                    used = ~c_i_last | (ncols_m1[:e_bits] >= e) if e_bits else Const(1)
                    entries.append(Mux(used, ends[k], 0))
                m.d.comb += [self.wr_data.valid.eq(1), self.wr_data.payload.eq(Cat(*entries))]
                with m.If(self.wr_data.ready):
                    count("dram_write_words", 1)
                with m.Else():
                    count("dram_wr_stall", 1)
            # the compressed write-back's start values, loaded on every cycle before it (d is
            # the pass's from SETUP on, offs change only in it): entering it is then no
            # condition on these registers (the compute-done test is a long path)
            with m.If(~x_wb):
                m.d.sync += [c_phase.eq(0), c_f.eq(0), c_j.eq(0), wb_col.eq(0),
                             a_valid.eq(0), a1_valid.eq(0), a_req_done.eq(0),
                             c_off.eq(Mux(d.out_first, 0, offs[0])),
                             c_daddr.eq(d.out_dram), c_iaddr.eq(d.out_idx)]
            with m.If(c_on):
                with m.Switch(c_phase):
                    with m.Case(0):
                        m.d.comb += enc.start.eq(~enc.busy)
                        with m.If(~enc.busy):
                            m.d.sync += [c_x.eq(0), c_pa.eq(c_f), c_phase.eq(1)]
                    with m.Case(1):
                        with m.If((c_x == d.out_width) & ~rq_busy & ~enc.busy):
                            m.d.sync += ends[c_j].eq(c_off)
                            with m.If(c_j == ncols_m1):
                                m.d.sync += c_phase.eq(2)
                            with m.Else():
                                m.d.sync += [c_j.eq(c_j + 1), wb_col.eq(wb_col + 1),
                                             c_phase.eq(0)]
                    with m.Case(2):
                        with m.If(idx_req_on & self.wr_req.ready):
                            m.d.sync += [c_phase.eq(3), c_i.eq(0), c_i_last.eq(nidx == 1)]
                    with m.Case(3):
                        with m.If(self.wr_data.ready):
                            m.d.sync += [c_i.eq(c_i + 1), c_i_last.eq(c_i + 2 == nidx)]
                            with m.If(c_i_last):
                                m.d.sync += [offs[c_f].eq(c_off), c_f.eq(c_f + 1),
                                             c_j.eq(0), wb_col.eq(0), c_phase.eq(0),
                                             c_off.eq(Mux(d.out_first, 0, offs[c_f + 1])),
                                             c_daddr.eq(c_daddr + d.out_ch_stride),
                                             c_iaddr.eq(c_iaddr + d.out_idx_stride)]

        # ---- the controller ---------------------------------------------------------------
        k_ch = Signal(12)                       # channel burst counter (DMA in)
        # no channel burst left (k_ch == nch_valid, or none at all): a flip-flop set with
        # k_ch (the descriptor at the stream's head is stable until the hand-over), so the
        # next burst's start is not behind a compare
        k_done = Signal()
        k_dram = Signal(ADDR_BITS)
        k_glb = Signal(range(p.glb_words * rows + 1))
        loading = ((lstate == _Load.DMA_FILT) | (lstate == _Load.DMA_IN) |
                   (lstate == _Load.IDX) | (lstate == _Load.RDATA))
        executing = ((xstate == _Exec.FLOAD) | (xstate == _Exec.COMPUTE) |
                     (xstate == _Exec.WRITEBACK))
        count("dma_in_cycles", loading)
        count("fload_cycles", xstate == _Exec.FLOAD)
        count("compute_cycles", xstate == _Exec.COMPUTE)
        count("writeback_cycles", xstate == _Exec.WRITEBACK)
        count("overlap_cycles", loading & executing)
        count("dma_stall_cycles", (xstate == _Exec.IDLE) & (lstate != _Load.IDLE))

        # The PEs start in the first filter-load cycle, when the IDs derived from the new
        # descriptor (registered in the array during set-up) are in place.
        start_q = Signal()
        m.d.sync += start_q.eq(xstate == _Exec.SETUP)
        m.d.comb += array.start.eq(start_q)

        # ---- the loader ------------------------------------------------------------------
        with m.Switch(lstate):
            with m.Case(_Load.IDLE):
                with m.If(self.desc.valid):
                    m.d.sync += go_l(_Load.CHECK)
            with m.Case(_Load.CHECK):
                with m.If(check.done & (check.err != DescError.NONE)):
                    # refused: consume the descriptor, report why
                    m.d.comb += self.desc.ready.eq(1)
                    m.d.sync += [self.error.eq(1), self.error_code.eq(check.err),
                                 *go_l(_Load.IDLE)]
                with m.Elif(check.done):
                    m.d.sync += go_l(_Load.WAIT)
            with m.Case(_Load.WAIT):
                with m.If(~dl.sync | (xstate == _Exec.IDLE)):
                    m.d.comb += [rd_go.eq(1), go_addr.eq(dl.filt_dram),
                                 go_len.eq(dl.filt_words), go_dst.eq(dl.filt_glb)]
                    m.d.sync += [k_ch.eq(0), k_dram.eq(dl.in_dram), k_idx.eq(dl.in_idx),
                                 k_done.eq((dl.nch_valid == 0) | (dl.in_burst == 0)),
                                 k_glb.eq(ld.glb_lo), *go_l(_Load.DMA_FILT)]
            with m.Case(_Load.DMA_FILT):
                with m.If(~rd_busy):
                    m.d.sync += go_l(_Load.DMA_IN)
            with m.Case(_Load.DMA_IN):
                with m.If(~rd_busy):
                    with m.If(k_done):
                        m.d.sync += go_l(_Load.READY)
                    with m.Elif(dl.in_rlc):
                        m.d.comb += [rd_go.eq(1), go_addr.eq(k_idx), go_len.eq(dl.in_idx_len),
                                     go_mode.eq(1)]
                        m.d.sync += go_l(_Load.IDX)
                    with m.Else():
                        m.d.comb += [rd_go.eq(1), go_addr.eq(k_dram), go_len.eq(dl.in_burst),
                                     go_dst.eq(k_glb)]
                        m.d.sync += [k_ch.eq(k_ch + 1), k_done.eq(k_ch + 1 == dl.nch_valid),
                                     k_dram.eq(k_dram + dl.in_ch_stride),
                                     k_glb.eq(k_glb + dl.ch_words)]
            with m.Case(_Load.IDX):
                start = Mux(dl.in_a_zero, 0, idx_start)
                next_channel = [k_ch.eq(k_ch + 1), k_done.eq(k_ch + 1 == dl.nch_valid),
                                k_dram.eq(k_dram + dl.in_ch_stride),
                                k_glb.eq(k_glb + dl.ch_words), k_idx.eq(k_idx + dl.in_idx_stride),
                                *go_l(_Load.DMA_IN)]
                with m.If(~rd_busy):
                    with m.If(idx_bad):
                        # a corrupt index: no data burst, an error status, on to the next
                        m.d.sync += [self.error.eq(1), self.error_code.eq(DescError.RLC)]
                        m.d.sync += next_channel
                    with m.Else():
                        m.d.comb += [rd_go.eq(1), go_addr.eq(k_dram + start),
                                     go_len.eq(idx_len), go_mode.eq(2)]
                        m.d.sync += [rows_left.eq(dl.row_hi - dl.row_lo), v_left.eq(0),
                                     rows_zero.eq(dl.row_hi == dl.row_lo), v_zero.eq(1),
                                     v_one.eq(0),
                                     pk_dst.eq(k_glb), pk_lane.eq(0),
                                     *go_l(_Load.RDATA)]
            with m.Case(_Load.RDATA):
                with m.If(~rd_busy & rows_done):
                    m.d.sync += next_channel
            # READY: the pass waits for the hand-over (below)

        # ---- the executor ----------------------------------------------------------------
        with m.Switch(xstate):
            with m.Case(_Exec.SETUP):
                # the array IDs (derived from the new descriptor) settle during this cycle
                m.d.sync += [*go_x(_Exec.FLOAD), fl_run.eq(1), fl_n.eq(0), fl_a.eq(fl_a0),
                             fl_idx.eq(0), fl_g.eq(0),
                             *ahead(fl_more.eq(1), fl_idx_last.eq(xd.pqs == 1))]
            with m.Case(_Exec.FLOAD):
                w0 = -Cat(d.pad, Const(0, 1)).as_signed()      # the first column, -pad
                with m.If(~fl_more & fl_empty):
                    m.d.sync += [fl_run.eq(0), *go_x(_Exec.COMPUTE), g_run.eq(1),
                                 pin_run.eq(d.accumulate & ~is_ws),
                                 g_w.eq(w0),
                                 g_lane.eq(0), g_c.eq(0), g_s.eq(0),
                                 g_h.eq(0), g_k.eq(0), g_done.eq(0),
                                 *ahead(g_zw.eq(zw_of(w0)), g_zh.eq(zh_of(0)),
                                        g_zk.eq(zk_of(0)),
                                        last_h.eq(pp_nrows_m1 == 0),
                                        last_s.eq(pp_vgroups_m1 == 0),
                                        last_c.eq(pp_chans_m1 == 0),
                                        last_w.eq(pp_w_last == w0)),
                                 g_a.eq(xoff), g_a_h0.eq(xoff), g_a_s0.eq(xoff),
                                 g_a_c0.eq(xoff)]
                    with m.If(is_os & (d.out_width != 1)):
                        m.d.sync += [fl_run.eq(1), fl_n.eq(0), fl_a.eq(fl_a0),
                                     fl_idx.eq(0), fl_g.eq(0),
                                     fl_rep.eq(1),
                                     *ahead(fl_more.eq(1), fl_idx_last.eq(pp_pqs_m1 == 0),
                                            fl_rep_more.eq(d.out_width != 2))]
            with m.Case(_Exec.COMPUTE):
                with m.If(g_done & g_empty & ~array.busy &
                          writers_done):
                    m.d.sync += [g_run.eq(0), pin_run.eq(0), fl_run.eq(0)]
                    with m.If(d.last & d.out_rlc):
                        m.d.sync += [*go_x(_Exec.WRITEBACK), wb_active.eq(1)]
                    with m.Elif(d.last):
                        m.d.sync += [*go_x(_Exec.WRITEBACK), wb_active.eq(1), wb_f.eq(0),
                                     wb_col.eq(0), wb_addr.eq(d.out_dram),
                                     wb_fbase.eq(d.out_dram), wb_req_pending.eq(1),
                                     wb_pa.eq(0),
                                     *ahead(wb_col_last_q.eq(ncols_m1 == 0),
                                            wb_f_last_q.eq(p_valid_m1 == 0),
                                            wb_fbase_n.eq(d.out_dram + d.out_ch_stride))]
                    with m.Else():
                        m.d.sync += go_x(_Exec.DONE)
            with m.Case(_Exec.WRITEBACK):
                row_idle = ~wb_req_pending & ~wb_issuing & ~rq_busy & ~beat_valid
                with m.If(d.out_rlc):
                    with m.If((c_phase == 3) & self.wr_data.ready & (c_i == nidx - 1) &
                              (c_f == p_valid_m1)):
                        m.d.sync += [wb_active.eq(0), *go_x(_Exec.DONE)]
                with m.Elif(row_idle):
                    with m.If(wb_last_col & wb_last_f):
                        m.d.sync += [wb_active.eq(0), *go_x(_Exec.DONE)]
                    with m.Elif(wb_last_col):
                        m.d.sync += [wb_col.eq(0), wb_f.eq(wb_f + 1),
                                     wb_pa.eq(wb_f + 1), wb_req_pending.eq(1),
                                     *ahead(wb_col_last_q.eq(ncols_m1 == 0),
                                            wb_f_last_q.eq(wb_f == pp_p_valid_m2),
                                            wb_fbase_n.eq(wb_fbase_n + d.out_ch_stride))]
                        if fast:
                            m.d.sync += [wb_fbase.eq(wb_fbase_n), wb_addr.eq(wb_fbase_n)]
                        else:
                            m.d.sync += [wb_fbase.eq(wb_fbase + d.out_ch_stride),
                                         wb_addr.eq(wb_fbase + d.out_ch_stride)]
                    with m.Else():
                        m.d.sync += [wb_col.eq(wb_col + 1),
                                     wb_addr.eq(wb_addr + d.out_row_words),
                                     wb_pa.eq(wb_f), wb_req_pending.eq(1),
                                     *ahead(wb_col_last_q.eq(wb_col == pp_ncols_m2))]
            with m.Case(_Exec.DONE):
                m.d.sync += self.passes_done.eq(self.passes_done + 1)
                count("passes", 1)
                m.d.sync += go_x(_Exec.IDLE)     # unless the hand-over (below) starts a pass

        # The pass's hand-over (the loader's READY meets an idle or finishing executor, which
        # then starts the pass without an idle cycle): the executor takes the pass, the loader
        # the next descriptor: one condition, after both state machines, so its state updates
        # win. The executor's descriptor registers (d, xd) follow the loader's while the
        # executor is free (IDLE, DONE: nothing reads them there), so they hold the pass's
        # from the hand-over on with the ``x_free`` flip-flop as their one clock enable (set
        # in two places, Yosys would build a multiplexer per bit) -- the hand-over condition
        # (a 388-load net on the 2x2 when it was their enable) reaches only the state and
        # the buffer flags.
        hand_over = Signal()
        m.d.comb += hand_over.eq(l_ready & x_free)
        with m.If(x_free):
            m.d.sync += [d.eq(dl), xd.eq(ld)]
        with m.If(hand_over):
            m.d.comb += self.desc.ready.eq(1)
            m.d.sync += [xbuf.eq(lbuf), lbuf.eq(~lbuf), *go_l(_Load.IDLE), *go_x(_Exec.SETUP)]

        # the one-bit events' registers, here (outside every condition of the count() calls)
        for name, event in one.items():
            step = Signal(name=f"cnt_{name}_step")
            m.d.sync += [step.eq(event), cnt[name].eq(cnt[name] + step)]
        return m


def _network_register(m, name, src_valid, fields, ready):
    """A register between a global-buffer stream and a network: it takes the source's word
    (``fields``, name -> value) whenever it is empty or its own word is being taken (``ready``).
    Returns its valid flag, its registers by name, and the signal that is high when the source's
    word moves in."""
    valid = Signal(name=f"{name}_valid")
    regs = {k: Signal(Value.cast(v).shape(), name=f"{name}_{k}") for k, v in fields.items()}
    moves = Signal(name=f"{name}_moves")
    free = ~valid | (valid & ready)
    m.d.comb += moves.eq(src_valid & free)
    with m.If(free):
        m.d.sync += valid.eq(src_valid)
    with m.If(moves):
        m.d.sync += [regs[k].eq(v) for k, v in fields.items()]
    return valid, regs, moves


def _queued_network_register(m, name, src_valid, fields, ready, issue, depth=5, derive=None):
    """With ``registered_networks``: a global-buffer stream whose block RAM output reaches only
    a register (the stage), the stage only a small FIFO next to it, and the network's register
    (:func:`_network_register`) only the FIFO's head, so neither the block RAM's slow output
    nor the path to the PEs (placed all over the array) is on one path with the FIFO's
    storage.

    ``fields`` (name -> value) is the word the cycle after its read (``src_valid``, no stall:
    the stage and then the FIFO take it). Reads go on credit: ``issue`` counts a word out, its
    move into the network's register brings it back, and at most ``depth`` words are out
    (read, in the stage, in the FIFO or the side register after it); the decision
    ``can_issue`` is a flip-flop. From a read to its word's move is four cycles, so five
    credits keep a word per cycle flowing. Returns
    ``can_issue``, ``empty`` (no word out, the network's register empty), and the register's
    valid flag and fields by name.

    ``derive`` (optional) maps the staged ``fields`` (a view by name) to the fields the FIFO
    keeps: the stage then takes the block RAM's words as they come out (its slow output meets
    a register, with nothing in between), and the selection after it."""
    raw = data.StructLayout({k: Value.cast(v).shape() for k, v in fields.items()})
    stage_valid = Signal(name=f"{name}_stage_valid")
    stage = Signal(raw.size, name=f"{name}_stage")
    m.d.sync += [stage_valid.eq(src_valid), stage.eq(Cat(*fields.values()))]
    staged = data.View(raw, stage)
    fields = derive(staged) if derive else {k: staged[k] for k in fields}
    layout = data.StructLayout({k: Value.cast(v).shape() for k, v in fields.items()})
    fifo = SyncFIFO(width=layout.size, depth=depth)
    m.submodules[f"{name}_fifo"] = fifo
    m.d.comb += [fifo.w_en.eq(stage_valid), fifo.w_data.eq(Cat(*fields.values()))]
    # A side register between the FIFO and the network's register: the FIFO's head moves
    # on whenever the side register is empty (into the network's register if that one moves,
    # else into the side register), so the FIFO's read enable and pointers are flip-flop
    # decisions, not the network's ready (an AND over the PEs). The network's register takes
    # the side register's word first: it sees the same words in the same cycles.
    side_valid = Signal(name=f"{name}_side_valid")
    side = Signal(layout.size, name=f"{name}_side")
    head = data.View(layout, Mux(side_valid, side, fifo.r_data))
    valid, regs, moves = _network_register(m, name, side_valid | fifo.r_rdy,
                                           {k: head[k] for k in fields}, ready)
    pop = fifo.r_rdy & ~side_valid
    m.d.comb += fifo.r_en.eq(pop)
    with m.If(side_valid):
        with m.If(moves):
            m.d.sync += side_valid.eq(0)
    with m.Elif(pop & ~moves):
        m.d.sync += [side_valid.eq(1), side.eq(fifo.r_data)]
    out = Signal(range(depth + 1), name=f"{name}_out")      # words read, not yet moved in
    out_next = Signal.like(out)
    can_issue = Signal(name=f"{name}_can_issue", init=1)
    m.d.comb += out_next.eq(out + issue - moves)
    m.d.sync += [out.eq(out_next), can_issue.eq(out_next != depth)]
    return can_issue, (out == 0) & ~valid, valid, regs


def _count_bits(bits):
    total = Const(0, 1)
    for b in bits:
        total = total + b
    return total

