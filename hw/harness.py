"""On-chip test harness: the accelerator with everything it talks to inside the FPGA.

An FPGA board has a clock, a button and a few LEDs -- not the hundreds of pins the
accelerator's descriptor, DMA and counter ports would need. The harness closes those ports on
chip so that the FPGA flow synthesizes the whole accelerator and nothing is optimized away:

* a **descriptor ROM** feeds the ``desc`` stream with the descriptors it is built with (the FPGA
  flow passes a real mapped layer's), once after reset; with no descriptors, a 32-bit LFSR
  drives the payload instead (every descriptor field then stays live, though the controller
  refuses most of them);
* a **DRAM model in block RAM** (``dram_depth`` words of ``dram_width`` bits, initialised with
  the program's DRAM image) serves the ``rd_req``/``rd_data`` bursts -- one word per cycle,
  the first one cycle after the request (two with ``slices``) -- and takes the
  ``wr_req``/``wr_data`` bursts. Addresses wrap modulo the depth;
* a **counter scan**: ``cnt_sel`` walks over every counter, and each value read, every written
  DRAM word and the status fold into an 8-bit ``checksum``.

Outputs: ``done`` (every descriptor accepted and the accelerator idle again), ``error`` (the
controller refused a descriptor) and ``checksum`` -- what a board shows on its LEDs.

The harness adds no state to the accelerator and does not change its cycle behaviour: it only
sits on its ports, as the cocotb benches' DRAM model does.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import Flow, Out

from .array import PEArray
from .params import AcceleratorParams
from .top import TOP_COUNTERS, Accelerator

__all__ = ["Harness", "ArrayHarness"]


def _fold(value, width: int):
    """XOR of ``value``'s bits in chunks of ``width`` (the last chunk zero-padded)."""
    chunks = [value[i:i + width] for i in range(0, len(value), width)]
    out = chunks[0]
    for c in chunks[1:]:
        out = out ^ c
    return out


class Harness(wiring.Component):
    """The accelerator of ``params`` closed on chip by a descriptor ROM, a block-RAM DRAM
    model and a counter scan; see the module docstring.

    ``descriptors`` are packed ``desc`` payloads (``PassDescriptor.pack``); ``dram_init`` the
    DRAM model's initial words (at most ``dram_depth``). ``slices``: registers between the
    harness and the accelerator's descriptor, DMA and status ports, as a bus would have (the
    descriptor and each read word a cycle later, each write request and each written word
    through a register of their own, and each word a cycle later into the memory), so that no
    path runs from the harness's memories through the accelerator's logic, nor from the
    accelerator's logic into the DRAM model's pointers; ``False`` saves their flip-flops (the iCE40UP5K flow:
    ``pico`` fills the device).
    """

    def __init__(self, params: AcceleratorParams, *, descriptors=(), dram_init=(),
                 dram_depth: int = 512, slices: bool = True):
        if not isinstance(params, AcceleratorParams):
            raise TypeError(f"params must be AcceleratorParams, not {params!r}")
        if (isinstance(dram_depth, bool) or not isinstance(dram_depth, int)
                or not 16 <= dram_depth <= 1 << 20 or dram_depth & (dram_depth - 1)):
            raise ValueError(f"dram_depth = {dram_depth!r} is out of range: allowed a power "
                             f"of two in 16..{1 << 20}")
        dram_init = [int(w) for w in dram_init]
        if len(dram_init) > dram_depth:
            raise ValueError(f"dram_init has {len(dram_init)} words: allowed at most "
                             f"dram_depth = {dram_depth}")
        self._p = params
        self._descriptors = [int(d) for d in descriptors]
        self._dram_depth = dram_depth
        self._slices = bool(slices)
        #: The DRAM model (created here so that a testbench can read what was written).
        self.dram = Memory(shape=unsigned(params.dram_width), depth=dram_depth, init=dram_init)
        super().__init__({"done": Out(1), "error": Out(1), "checksum": Out(8)})

    @property
    def dram_depth(self) -> int:
        return self._dram_depth

    def elaborate(self, platform):
        m = Module()
        p = self._p
        m.submodules.accel = acc = Accelerator(p)

        # ---- descriptor source ---------------------------------------------------------------
        n = len(self._descriptors)
        sent = Signal(range(n + 1))
        if n:
            rom = Memory(shape=unsigned(acc.desc_layout.size), depth=n,
                         init=self._descriptors)
            m.submodules.desc_rom = rom
            rd = rom.read_port(domain="comb")
            # the descriptor is offered from a register (the ROM's read and the
            # accelerator's check are not one path): a cycle after the one before is taken
            m.d.comb += rd.addr.eq(sent)
            if self._slices:
                loaded = Signal()
                payload = Signal.like(acc.desc.payload)
                m.d.comb += [acc.desc.payload.eq(payload), acc.desc.valid.eq(loaded)]
                with m.If(~loaded & (sent != n)):
                    m.d.sync += [payload.eq(rd.data), loaded.eq(1)]
                with m.If(acc.desc.valid & acc.desc.ready):
                    m.d.sync += loaded.eq(0)
            else:
                m.d.comb += [acc.desc.payload.eq(rd.data), acc.desc.valid.eq(sent != n)]
            with m.If(acc.desc.valid & acc.desc.ready):
                m.d.sync += sent.eq(sent + 1)
            all_sent = sent == n
        else:
            lfsr = Signal(32, init=1)
            # x^32 + x^22 + x^2 + x + 1 (maximal length), shifted once per accepted descriptor
            feedback = lfsr[31] ^ lfsr[21] ^ lfsr[1] ^ lfsr[0]
            width = acc.desc_layout.size
            m.d.comb += [acc.desc.payload.eq(Cat(*[lfsr] * (-(-width // 32)))[:width]),
                         acc.desc.valid.eq(1)]
            with m.If(acc.desc.ready):
                m.d.sync += lfsr.eq(Cat(feedback, lfsr[:31]))
            all_sent = 0

        # ---- DRAM model ----------------------------------------------------------------------
        depth = self._dram_depth
        m.submodules.dram = dram = self.dram
        mem_r = dram.read_port(domain="sync")
        mem_w = dram.write_port()
        abits = (depth - 1).bit_length()

        # reads: the request is taken when idle; then one word per cycle from the read port,
        # through a register slice (:func:`_register_slice`: the block RAM's enable does not
        # wait on the accelerator's ready, which is logic, as a bus's slice would)
        r_busy = Signal()
        r_ptr = Signal(abits)
        r_left = Signal.like(acc.rd_req.payload.len)   # words not yet fetched
        r_have = Signal()                              # mem_r.data holds an unsent word
        o_valid = s_valid = Const(0)
        m.d.comb += acc.rd_req.ready.eq(~r_busy)
        with m.If(acc.rd_req.valid & ~r_busy):
            m.d.sync += [r_busy.eq(1), r_ptr.eq(acc.rd_req.payload.addr[:abits]),
                         r_left.eq(acc.rd_req.payload.len), r_have.eq(0)]
        advance = Signal()
        m.d.comb += [mem_r.addr.eq(r_ptr), mem_r.en.eq(advance)]
        if self._slices:
            word = Signal()                            # mem_r's word leaves this cycle
            o_valid, o_data, s_valid = _register_slice(m, "o", word, mem_r.data,
                                                       acc.rd_data.ready)
            m.d.comb += [word.eq(r_busy & r_have & ~s_valid),
                         advance.eq(r_busy & (~r_have | ~s_valid)),
                         acc.rd_data.valid.eq(o_valid), acc.rd_data.payload.eq(o_data)]
        else:
            m.d.comb += [advance.eq(r_busy & (~r_have | acc.rd_data.ready)),
                         acc.rd_data.valid.eq(r_busy & r_have),
                         acc.rd_data.payload.eq(mem_r.data)]
        with m.If(advance):
            with m.If(r_left != 0):
                m.d.sync += [r_ptr.eq(r_ptr + 1), r_left.eq(r_left - 1), r_have.eq(1)]
            with m.Else():
                m.d.sync += [r_have.eq(0), r_busy.eq(0)]

        # writes: the request is taken when idle; then one beat per cycle into the memory.
        # With slices the request waits in a register (q_*) first: the accelerator's request
        # logic ends there, not in the burst's pointer and count
        w_busy = Signal()
        w_ptr = Signal(abits)
        w_left = Signal.like(acc.wr_req.payload.len)
        q_valid = Signal()                 # (without slices: no request register, always 0)
        # with slices the data beats come through a register slice too: the accelerator's
        # valid reaches registers, not the burst's pointer and count
        d_valid = e_valid = Const(0)
        if self._slices:
            comes = Signal()
            d_valid, d_data, e_valid = _register_slice(m, "d", comes, acc.wr_data.payload,
                                                       w_busy)
            m.d.comb += [comes.eq(acc.wr_data.valid & ~e_valid),
                         acc.wr_data.ready.eq(~e_valid)]
            beat_valid, beat_data = d_valid, d_data
        else:
            m.d.comb += acc.wr_data.ready.eq(w_busy)
            beat_valid, beat_data = acc.wr_data.valid, acc.wr_data.payload
        if self._slices:
            q_addr = Signal(abits)
            q_len = Signal.like(acc.wr_req.payload.len)
            m.d.comb += acc.wr_req.ready.eq(~q_valid)
            with m.If(acc.wr_req.valid & ~q_valid):
                m.d.sync += [q_valid.eq(1), q_addr.eq(acc.wr_req.payload.addr[:abits]),
                             q_len.eq(acc.wr_req.payload.len)]
            with m.If(q_valid & ~w_busy):
                m.d.sync += q_valid.eq(0)
            req_valid, req_addr, req_len = q_valid, q_addr, q_len
        else:
            m.d.comb += acc.wr_req.ready.eq(~w_busy)
            req_valid, req_addr, req_len = (acc.wr_req.valid, acc.wr_req.payload.addr[:abits],
                                            acc.wr_req.payload.len)
        with m.If(req_valid & ~w_busy & (req_len != 0)):
            m.d.sync += [w_busy.eq(1), w_ptr.eq(req_addr), w_left.eq(req_len)]
        # with slices the write goes to the memory a cycle later, from registers
        w_en = Signal()
        w_addr = Signal(abits)
        w_data = Signal(p.dram_width)
        w_now = [w_en.eq(w_busy & beat_valid), w_addr.eq(w_ptr), w_data.eq(beat_data)]
        if self._slices:
            m.d.sync += w_now
        else:
            m.d.comb += w_now
        m.d.comb += [mem_w.addr.eq(w_addr), mem_w.data.eq(w_data), mem_w.en.eq(w_en)]
        with m.If(w_busy & beat_valid):
            m.d.sync += [w_ptr.eq(w_ptr + 1), w_left.eq(w_left - 1)]
            with m.If(w_left == 1):
                m.d.sync += w_busy.eq(0)

        # ---- counter scan and checksum -------------------------------------------------------
        sel = Signal(range(len(TOP_COUNTERS)))
        m.d.sync += sel.eq(sel + 1)
        with m.If(sel == len(TOP_COUNTERS) - 1):
            m.d.sync += sel.eq(0)
        # (the accelerator's counter read is registered: its multiplexer and the fold below
        # are not one path)
        m.d.comb += acc.cnt_sel.eq(sel)
        sig = self.checksum
        written = Mux(w_en, _fold(w_data, 8), 0)
        now = Cat(acc.busy, acc.error, acc.error_code, _fold(acc.passes_done, 2))
        status = Signal(len(now))
        if self._slices:
            m.d.sync += status.eq(now)
        else:
            m.d.comb += status.eq(now)
        m.d.sync += sig.eq(Cat(sig[7], sig[:7]) ^ _fold(acc.cnt_value, 8) ^ written ^ status)

        m.d.comb += [self.error.eq(acc.error)]
        m.d.sync += self.done.eq(all_sent & ~acc.busy & ~r_busy & ~o_valid & ~q_valid & ~w_busy &
                                 ~w_en & ~d_valid & ~e_valid)
        return m


def _register_slice(m, name, comes, payload, taken):
    """A register slice: ``payload`` is taken when ``comes`` (the producer sees the slice's
    ready as ``~skid``), ``valid``/``data`` are registers, and the word leaves when
    ``taken``; a word that arrives while the output register is held waits in a skid
    register, so neither side's handshake reaches the other's logic. Returns (valid, data,
    skid): ``skid`` high means the slice takes nothing this cycle."""
    width = len(payload)
    valid, skid = Signal(name=f"{name}_valid"), Signal(name=f"{name}_skid")
    data, held = Signal(width, name=f"{name}_data"), Signal(width, name=f"{name}_held")
    with m.If(~valid | taken):
        m.d.sync += [valid.eq(skid | comes), skid.eq(0), data.eq(Mux(skid, held, payload))]
    with m.Elif(comes):
        m.d.sync += skid.eq(1)
    # the skid register follows the input while it is empty (read only when full): its
    # enable is a flip-flop, not ``taken``
    with m.If(~skid):
        m.d.sync += held.eq(payload)
    return valid, data, skid


class ArrayHarness(wiring.Component):
    """The PE array of ``params`` alone, between registers: how fast the array itself runs
    on an FPGA, apart from the controller, the DMA engines and the codecs around it.

    Every input bit of :class:`hw.array.PEArray` comes from a flip-flop of a scan chain fed
    by a 32-bit LFSR (each bit its own flip-flop, one LUT-free step from its neighbour), and
    every output bit goes into a multiple-input signature register (one XOR per bit with the
    neighbouring bit), whose last eight bits are ``checksum``: every port is driven and
    observed, every path into and out of the array starts and ends at a flip-flop next to it,
    and nothing is optimized away. The stimulus is not a meaningful program (this harness is
    for synthesis and timing, not for simulation): static timing does not depend on it.
    ``done`` and ``error`` are two more signature bits (the ports of :class:`Harness`, so
    that the board wrappers take either harness).
    """

    def __init__(self, params: AcceleratorParams):
        if not isinstance(params, AcceleratorParams):
            raise TypeError(f"params must be AcceleratorParams, not {params!r}")
        self._p = params
        super().__init__({"done": Out(1), "error": Out(1), "checksum": Out(8)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.accel = arr = PEArray(self._p)
        ins, outs = [], []
        for _path, member, value in arr.signature.flatten(arr):
            (ins if member.flow == Flow.In else outs).append(Value.cast(value))
        n_in = sum(len(v) for v in ins)
        n_out = sum(len(v) for v in outs)

        lfsr = Signal(32, init=1)
        # x^32 + x^22 + x^2 + x + 1 (maximal length), one step per cycle
        m.d.sync += lfsr.eq(Cat(lfsr[31] ^ lfsr[21] ^ lfsr[1] ^ lfsr[0], lfsr[:31]))
        chain = Signal(n_in)
        m.d.sync += chain.eq(Cat(lfsr[0], chain[:-1]) if n_in > 1 else lfsr[0])
        at = 0
        for v in ins:
            m.d.comb += v.eq(chain[at:at + len(v)])
            at += len(v)

        sig = Signal(max(n_out, 10))
        gathered = Cat(*outs)
        m.d.sync += sig.eq(Cat(sig[-1], sig[:-1]) ^ gathered)
        m.d.comb += [self.checksum.eq(sig[-8:]), self.done.eq(sig[0]), self.error.eq(sig[1])]
        return m
