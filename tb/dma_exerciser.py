"""Test-only DMA masters for the DRAM model's benches.

The accelerator talks to DRAM through four streams (Amaranth names; Verilog ``<name>__payload``,
``__valid``, ``__ready``):

* ``rd_req`` / ``wr_req`` (out): requests of :func:`dma_request_layout` -- ``addr`` in bits
  [0:32), ``len`` in bits [32:56), both counting ``dram_width``-bit words;
* ``rd_data`` (in): exactly ``len`` beats per read request, in request order;
* ``wr_data`` (out): exactly ``len`` beats per write request, to ``addr``, ``addr + 1``, ...,
  each beat in the same cycle as its request's handshake or later.

:class:`DmaExerciser` is a small copy engine with those ports, so that :mod:`tb.dram` can be
verified against real hardware before the accelerator exists; :class:`DmaStub` forwards the ports
to inputs the bench drives directly, for the model's protocol-error checks.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.descriptor import ADDR_BITS, COUNT_BITS

__all__ = ["dma_request_layout", "dma_master_members", "copy_command_layout", "DmaExerciser",
           "DmaStub", "MAX_BURST", "copy_cycles"]

#: The longest write burst the exerciser requests (words).
MAX_BURST = 16
#: Bits of the exerciser's command length.
CMD_LEN_BITS = 16


def dma_request_layout() -> data.StructLayout:
    """The payload of ``rd_req`` and ``wr_req``: a start word address and a length in words."""
    return data.StructLayout({"addr": unsigned(ADDR_BITS), "len": unsigned(COUNT_BITS)})


def dma_master_members(dram_width: int) -> dict:
    """The four DMA ports of a DRAM master, as ``wiring.Signature`` members."""
    if not isinstance(dram_width, int) or dram_width <= 0:
        raise ValueError(f"dram_width must be a positive integer, not {dram_width!r}")
    request = stream.Signature(dma_request_layout())
    return {
        "rd_req":  Out(request),
        "rd_data": In(stream.Signature(unsigned(dram_width))),
        "wr_req":  Out(request),
        "wr_data": Out(stream.Signature(unsigned(dram_width))),
    }


def copy_command_layout() -> data.StructLayout:
    """One exerciser command: copy ``len`` words from ``src`` to ``dst``."""
    return data.StructLayout({"src": unsigned(ADDR_BITS), "dst": unsigned(ADDR_BITS),
                              "len": unsigned(CMD_LEN_BITS)})


def copy_cycles(length: int, read_latency: int) -> int:
    """Cycles from a command's handshake to its last write beat's, against a nominal DRAM.

    Counted for a lone command (the exerciser idle before it, the model at ``stall_prob=0``):
    1 to register the read request, ``read_latency`` to its first beat, ``length - 1`` more
    beats, 1 through the data FIFO to ``wr_data``. The write requests keep ahead of the data
    (see :class:`DmaExerciser`), so they never add a cycle.
    """
    return 1 + read_latency + (length - 1) + 1


class DmaExerciser(wiring.Component):
    """Copies ``len`` words from ``src`` to ``dst`` for each command on ``cmd``.

    Two engines share a data FIFO (``data_depth`` words) and a FIFO of pending write jobs:

    * the read engine turns each command into one read request of ``len`` words and a write
      job ``(dst, len)``; it takes the next command as soon as the request is accepted, so
      several read requests may be outstanding (up to the job FIFO's ``jobs`` entries);
    * the write engine cuts the job at the head of the job FIFO into write requests of at most
      :data:`MAX_BURST` words and sends the FIFO's words on ``wr_data``, only for requests
      already accepted (``owed``, never more than two bursts), so a beat never precedes its
      request. Requests are made ahead of the data rather than once it is buffered: the data
      then flows at one word per cycle and the DRAM model sees overlapping write requests.

    ``rd_data`` is never refused for long: the write engine drains the FIFO independently of
    the reads, so no command order can deadlock. Commands with ``len == 0`` are accepted and
    do nothing. No ordering is kept between one command's writes and a later command's reads
    (give overlapping copies to the exerciser one at a time). ``busy`` is high while any
    accepted command has words left to write.
    """

    def __init__(self, *, dram_width: int, data_depth: int = 16, jobs: int = 4):
        if not isinstance(data_depth, int) or data_depth < MAX_BURST:
            raise ValueError(f"data_depth must be an integer >= {MAX_BURST}, not {data_depth!r}")
        if not isinstance(jobs, int) or jobs < 1:
            raise ValueError(f"jobs must be a positive integer, not {jobs!r}")
        self._dram_width = dram_width
        self._data_depth = data_depth
        self._jobs = jobs
        super().__init__({
            "cmd":  In(stream.Signature(copy_command_layout())),
            "busy": Out(1),
            **dma_master_members(dram_width),
        })

    @property
    def dram_width(self) -> int:
        return self._dram_width

    def elaborate(self, platform):
        m = Module()
        cmd, rd_req, wr_req, wr_data = self.cmd, self.rd_req, self.wr_req, self.wr_data

        m.submodules.data_fifo = data_fifo = fifo.SyncFIFO(width=self._dram_width,
                                                           depth=self._data_depth)
        wiring.connect(m, wiring.flipped(self.rd_data), data_fifo.w_stream)

        job_layout = data.StructLayout({"dst": unsigned(ADDR_BITS),
                                        "len": unsigned(CMD_LEN_BITS)})
        m.submodules.job_fifo = job_fifo = fifo.SyncFIFO(width=job_layout.size,
                                                         depth=self._jobs)

        # ---- read engine: one read request and one write job per command -----------------
        m.d.comb += cmd.ready.eq((~rd_req.valid | rd_req.ready) & job_fifo.w_rdy)
        with m.If(cmd.valid & cmd.ready):
            m.d.sync += [
                rd_req.valid.eq(cmd.payload.len != 0),
                rd_req.payload.addr.eq(cmd.payload.src),
                rd_req.payload.len.eq(cmd.payload.len),
            ]
            job_in = data.View(job_layout, job_fifo.w_data)
            m.d.comb += [
                job_in.dst.eq(cmd.payload.dst),
                job_in.len.eq(cmd.payload.len),
                job_fifo.w_en.eq(cmd.payload.len != 0),
            ]
        with m.Elif(rd_req.ready):
            m.d.sync += rd_req.valid.eq(0)

        # ---- write engine: bursts of the head job, data only for accepted bursts ----------
        job = data.View(job_layout, job_fifo.r_data)
        done = Signal(CMD_LEN_BITS)            # words of the head job already requested
        left = Signal(CMD_LEN_BITS)
        m.d.comb += left.eq(job.len - done)
        burst = Signal(range(MAX_BURST + 1))
        m.d.comb += burst.eq(Mux(left > MAX_BURST, MAX_BURST, left))
        owed = Signal(range(2 * MAX_BURST + 1))  # beats of accepted requests not yet sent

        # A new request only when the previous one has been accepted (and counted in owed).
        with m.If(job_fifo.r_rdy & ~wr_req.valid & (owed <= MAX_BURST)):
            m.d.sync += [
                wr_req.valid.eq(1),
                wr_req.payload.addr.eq(job.dst + done),
                wr_req.payload.len.eq(burst),
            ]
            with m.If(left == burst):
                m.d.comb += job_fifo.r_en.eq(1)
                m.d.sync += done.eq(0)
            with m.Else():
                m.d.sync += done.eq(done + burst)
        with m.Elif(wr_req.ready):
            m.d.sync += wr_req.valid.eq(0)

        send = Signal()
        m.d.comb += [
            wr_data.payload.eq(data_fifo.r_data),
            wr_data.valid.eq(data_fifo.r_rdy & (owed != 0)),
            send.eq(wr_data.valid & wr_data.ready),
            data_fifo.r_en.eq(send),
        ]
        accepted = Mux(wr_req.valid & wr_req.ready, wr_req.payload.len, 0)
        m.d.sync += owed.eq(owed + accepted - send)

        m.d.comb += self.busy.eq(rd_req.valid | job_fifo.r_rdy | wr_req.valid | (owed != 0))
        return m


class DmaStub(wiring.Component):
    """The four DMA ports, each forwarded from a ``drive_<port>`` port of the opposite flow.

    The bench drives ``drive_rd_req``, ``drive_wr_req`` and ``drive_wr_data`` (and reads
    ``drive_rd_data``) as if it were the DMA master, so it can break the protocol on purpose.
    ``cycle`` counts clock cycles from reset: it gives the stub its clock (a purely
    combinational top has none) and lets the bench check the model's cycle numbering.
    """

    def __init__(self, *, dram_width: int):
        members = dma_master_members(dram_width)
        super().__init__({**members,
                          **{f"drive_{name}": member.flip() for name, member in members.items()},
                          "cycle": Out(32)})

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.cycle.eq(self.cycle + 1)
        for name in ("rd_req", "wr_req", "wr_data"):
            wiring.connect(m, wiring.flipped(getattr(self, f"drive_{name}")),
                           wiring.flipped(getattr(self, name)))
        wiring.connect(m, wiring.flipped(self.rd_data), wiring.flipped(self.drive_rd_data))
        return m
