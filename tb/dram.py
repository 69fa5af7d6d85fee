"""A bus-functional DRAM for cocotb benches: the slave side of the accelerator's DMA port.

The DUT is the DMA master (see :mod:`tb.dma_exerciser` for the port contract): it sends read
requests on ``rd_req`` and takes the data on ``rd_data``; it sends write requests on ``wr_req``
and the data on ``wr_data``. Requests carry ``addr`` (bits [0:32)) and ``len`` (bits [32:56)),
both counting ``width``-bit words.

Cycle numbering
    Cycle ``k`` is the clock period that ends at the ``k``-th rising edge after :meth:`start`.
    A transfer "in cycle ``k``" is one where ``valid`` and ``ready`` are both high just before
    that edge, so the DUT's registers take it at edge ``k``. The model drives its outputs on the
    falling edge in the middle of the cycle and samples the handshake in the read-only phase
    after it (as :mod:`tb.cocotb_streams` does), so its counts are exactly the hardware's.

Nominal timing (``stall_prob = 0``), which performance models may rely on
    * ``rd_req``, ``wr_req`` and ``wr_data`` are ready in every cycle;
    * a read request accepted in cycle ``t`` has its first beat valid in cycle
      ``t + read_latency`` (so ``read_latency >= 1``), then one beat per cycle for as long as
      the DUT takes them; a beat, once offered, stays valid and unchanged until taken;
    * read requests are pipelined: the first beat of the next request follows the last beat
      of the previous one in the next cycle if its own latency has elapsed by then, so the
      read port delivers one word per cycle when requests are issued early enough. A request
      of ``n`` words accepted in cycle ``t`` on an always-ready DUT, with no earlier request
      still delivering, completes in cycle ``t + read_latency + n - 1``;
    * writes have no latency: a beat in cycle ``k`` is in :attr:`memory` at edge ``k``, and
      one beat is taken per cycle.

Bandwidth: with ``word_interval = k > 1`` (a DRAM slower than the port: ``k`` cycles per
word) a read beat is offered at least ``k`` cycles after the previous one was taken, and
``wr_data`` is not ready for ``k - 1`` cycles after each write beat; requests are unaffected.

With ``stall_prob = p > 0`` (all from the seeded ``rng``): each of ``rd_req``, ``wr_req`` and
``wr_data`` is not ready in a cycle with probability ``p``; every read request gets an extra
latency drawn uniformly from ``0 .. 2 * read_latency``; before each read beat is offered the
model idles for a cycle with probability ``p`` (a beat once offered still stays valid).

Protocol errors (recorded in :attr:`protocol_errors` with their cycle, never raised, so the
bench decides): a request with ``len = 0``; a request running past the end of the 32-bit
address space; a write beat with no write request pending; ``valid`` or a transferred payload
that is X/Z. An erroneous request is dropped; an unpaired write beat is taken and discarded.

A read beat returns the word as it was when the beat was first offered. Addresses neither given
in ``words`` nor written before are read as 0 and listed in :attr:`uninitialised_reads`.
"""

from __future__ import annotations

import collections
import random
from dataclasses import dataclass, field

import cocotb
from cocotb.triggers import Event, FallingEdge, ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

from hw.descriptor import ADDR_BITS, COUNT_BITS

__all__ = ["DramModel", "DramRequest"]


@dataclass
class DramRequest:
    """One request as the model saw it; cycles are numbered as in the module docstring."""
    kind: str                   # "read" or "write"
    addr: int
    len: int
    issue: int                  # cycle of the request's handshake
    first: int | None = None    # cycle of its first beat
    done: int | None = None     # cycle of its last beat (None while beats are missing)
    beats: int = 0              # beats transferred so far
    ready_at: int = field(default=0, repr=False)  # reads: first cycle a beat may be offered


class _Stream:
    def __init__(self, dut, name: str):
        self.name = name
        self.payload = getattr(dut, f"{name}__payload")
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")


class DramModel:
    """A word-addressed DRAM on the four DMA streams of ``dut`` (names after ``prefix``).

    ``words`` is the initial contents: a list (address ``i`` holds ``words[i]``) or a dict
    ``{address: word}``; it is copied into :attr:`memory` (a dict), which the bench may read
    and write between transfers. ``prefix`` is prepended verbatim to the port names
    (``prefix + "rd_req__valid"`` ...), e.g. ``"dram__"`` for a nested interface.
    """

    def __init__(self, dut, clk, *, words: list[int] | dict, width: int, read_latency: int = 16,
                 rng: random.Random | None = None, stall_prob: float = 0.0, prefix: str = "",
                 word_interval: int = 1):
        if not isinstance(width, int) or width <= 0:
            raise ValueError(f"width must be a positive integer, not {width!r}")
        if not isinstance(read_latency, int) or read_latency < 1:
            raise ValueError(f"read_latency must be an integer >= 1, not {read_latency!r}")
        if not 0.0 <= stall_prob < 1.0:
            raise ValueError(f"stall_prob must be in [0, 1), not {stall_prob!r}")
        items = words.items() if isinstance(words, dict) else enumerate(words)
        self.memory: dict[int, int] = {}
        for addr, word in items:
            if not 0 <= addr < 1 << ADDR_BITS:
                raise ValueError(f"address {addr!r} is outside the {ADDR_BITS}-bit space")
            if not 0 <= word < 1 << width:
                raise ValueError(f"word {word!r} at address {addr} does not fit {width} bits")
            self.memory[addr] = word
        self._width = width
        self._latency = read_latency
        if isinstance(word_interval, bool) or not isinstance(word_interval, int) \
                or word_interval < 1:
            raise ValueError(f"word_interval must be an integer >= 1, not {word_interval!r}")
        self._interval = word_interval       # cycles per word on each data port (bandwidth)
        self._next_rd = 0                    # first cycle the next read beat may be offered
        self._next_wr = 0                    # first cycle the next write beat may be taken
        self._rng = rng if rng is not None else random.Random(0)
        self._stall_prob = stall_prob

        self._rd_req = _Stream(dut, f"{prefix}rd_req")
        self._rd_data = _Stream(dut, f"{prefix}rd_data")
        self._wr_req = _Stream(dut, f"{prefix}wr_req")
        self._wr_data = _Stream(dut, f"{prefix}wr_data")
        for s in (self._rd_data, self._wr_data):
            if len(s.payload) != width:
                raise ValueError(f"{s.name}__payload has {len(s.payload)} bits, not width = "
                                 f"{width}")
        for s in (self._rd_req, self._wr_req):
            if len(s.payload) != ADDR_BITS + COUNT_BITS:
                raise ValueError(f"{s.name}__payload has {len(s.payload)} bits, not "
                                 f"{ADDR_BITS + COUNT_BITS} (addr, len)")
        self._clk = clk
        self._task = None
        self._period = 0
        self._asleep_since = None
        self._wake = Event()
        self._watchers = []

        #: The cycle in progress (from its falling edge on) or just ended; 0 before the first.
        self._cycle = 0
        #: Every accepted request in handshake order (reads and writes interleaved).
        self.requests: list[DramRequest] = []
        self.protocol_errors: list[str] = []
        self.uninitialised_reads: list[int] = []
        #: Beats transferred per address.
        self.read_counts: collections.Counter[int] = collections.Counter()
        self.write_counts: collections.Counter[int] = collections.Counter()
        self.reads = 0    # words
        self.writes = 0   # words
        self._pending_reads: collections.deque[DramRequest] = collections.deque()
        self._pending_writes: collections.deque[DramRequest] = collections.deque()
        self._offer: tuple[DramRequest, int] | None = None  # read beat on the bus: (req, addr)

        self._rd_req.ready.value = 0
        self._wr_req.ready.value = 0
        self._wr_data.ready.value = 0
        self._rd_data.valid.value = 0

    # ---- public interface ------------------------------------------------------------------
    @property
    def width(self) -> int:
        return self._width

    @property
    def read_latency(self) -> int:
        return self._latency

    @property
    def stall_prob(self) -> float:
        return self._stall_prob

    @property
    def read_requests(self) -> list[DramRequest]:
        return [r for r in self.requests if r.kind == "read"]

    @property
    def write_requests(self) -> list[DramRequest]:
        return [r for r in self.requests if r.kind == "write"]

    @property
    def idle(self) -> bool:
        """No accepted request has beats left to transfer."""
        return not self._pending_reads and not self._pending_writes

    def start(self) -> "DramModel":
        self._task = cocotb.start_soon(self._run())
        self._watchers = [cocotb.start_soon(self._watch(s.valid))
                          for s in (self._rd_req, self._wr_req, self._wr_data)]
        return self

    def stop(self):
        for task in [self._task, *self._watchers]:
            if task is not None:
                task.cancel()
        self._task, self._watchers = None, []

    async def _watch(self, valid):
        """Wakes the model from an idle stretch when a DUT valid rises."""
        while True:
            await RisingEdge(valid)
            self._wake.set()

    async def wait_idle(self, *, timeout_cycles: int | None = None):
        """Return after the first rising edge at which :attr:`idle` holds."""
        waited = 0
        while True:
            await RisingEdge(self._clk)
            if self.idle:
                return
            waited += 1
            if timeout_cycles is not None and waited >= timeout_cycles:
                raise TimeoutError(f"DRAM model still busy after {waited} cycles: "
                                   f"{len(self._pending_reads)} reads, "
                                   f"{len(self._pending_writes)} writes pending")

    def contents(self, addr: int, n: int) -> list[int]:
        """Words ``addr .. addr + n - 1`` (0 where never set), without counting a read."""
        return [self.memory.get(a, 0) for a in range(addr, addr + n)]

    def stats(self) -> dict:
        """A JSON-friendly summary."""
        return {
            "cycle": self.cycle, "reads": self.reads, "writes": self.writes,
            "read_requests": len(self.read_requests),
            "write_requests": len(self.write_requests),
            "protocol_errors": list(self.protocol_errors),
            "uninitialised_reads": len(self.uninitialised_reads),
        }

    # ---- the cycle loop --------------------------------------------------------------------
    def _stalled(self) -> bool:
        return self._stall_prob > 0 and self._rng.random() < self._stall_prob

    def _error(self, message: str):
        self.protocol_errors.append(f"cycle {self.cycle}: {message}")

    def _high(self, signal, name: str) -> bool:
        value = signal.value
        if not value.is_resolvable:
            self._error(f"{name} is {value}")
            return False
        return bool(value)

    def _payload(self, stream: _Stream) -> int | None:
        value = stream.payload.value
        if not value.is_resolvable:
            self._error(f"{stream.name}__payload is {value} in a transfer")
            return None
        return value.to_unsigned()

    def _take_request(self, stream: _Stream, kind: str) -> DramRequest | None:
        bits = self._payload(stream)
        if bits is None:
            return None
        addr = bits & ((1 << ADDR_BITS) - 1)
        length = bits >> ADDR_BITS
        if length == 0:
            self._error(f"{kind} request at {addr:#x} with len = 0")
            return None
        if addr + length > 1 << ADDR_BITS:
            self._error(f"{kind} request at {addr:#x} of {length} words runs past the end of "
                        f"the {ADDR_BITS}-bit address space")
            return None
        request = DramRequest(kind, addr, length, issue=self.cycle)
        self.requests.append(request)
        return request

    @staticmethod
    def _beat(request: DramRequest, cycle: int):
        if request.beats == 0:
            request.first = cycle
        request.beats += 1
        if request.beats == request.len:
            request.done = cycle

    async def _sleep_while_idle(self):
        """Skip the cycles in which nothing can happen -- no request pending, no beat offered,
        every DUT valid low -- and count them. Returns at the falling edge of the cycle in
        which a DUT valid rose (at once if there is no such quiet stretch)."""
        streams = (self._rd_req, self._wr_req, self._wr_data)
        if not self._period or self._offer or self._pending_reads or self._pending_writes:
            return
        self._wake.clear()
        if any(self._high_quiet(s.valid) for s in streams):
            return
        self._rd_data.valid.value = 0       # no beat is offered while asleep
        self._asleep_since = get_sim_time("step")
        await self._wake.wait()
        await FallingEdge(self._clk)
        self._cycle += round((get_sim_time("step") - self._asleep_since) / self._period)
        self._asleep_since = None

    @property
    def cycle(self) -> int:
        """The current cycle, also while the model sleeps through an idle stretch."""
        if self._asleep_since is None:
            return self._cycle
        return self._cycle + int((get_sim_time("step") - self._asleep_since) // self._period)

    @staticmethod
    def _high_quiet(signal) -> bool:
        value = signal.value
        return value.is_resolvable and bool(value)

    async def _run(self):
        rd_req, rd_data, wr_req, wr_data = self._rd_req, self._rd_data, self._wr_req, self._wr_data
        last = None
        while True:
            await FallingEdge(self._clk)
            self._cycle += 1
            now = get_sim_time("step")
            if last is not None:
                self._period = now - last
            await self._sleep_while_idle()
            last = get_sim_time("step")
            take_rd_req = not self._stalled()
            take_wr_req = not self._stalled()
            take_wr_data = not self._stalled() and self.cycle >= self._next_wr
            rd_req.ready.value = int(take_rd_req)
            wr_req.ready.value = int(take_wr_req)
            wr_data.ready.value = int(take_wr_data)
            if self._offer is None and self._pending_reads:
                head = self._pending_reads[0]
                if head.ready_at <= self.cycle and self.cycle >= self._next_rd \
                        and not self._stalled():
                    addr = head.addr + head.beats
                    self._offer = (head, addr)
                    rd_data.payload.value = self.memory.get(addr, 0)
            rd_data.valid.value = int(self._offer is not None)

            await ReadOnly()
            # Requests before beats: a write beat may pair with a request of the same cycle.
            if take_rd_req and self._high(rd_req.valid, "rd_req__valid"):
                request = self._take_request(rd_req, "read")
                if request is not None:
                    extra = self._rng.randint(0, 2 * self._latency) if self._stall_prob else 0
                    request.ready_at = self.cycle + self._latency + extra
                    self._pending_reads.append(request)
            if self._offer is not None and self._high(rd_data.ready, "rd_data__ready"):
                request, addr = self._offer
                self._offer = None
                if addr not in self.memory:
                    self.uninitialised_reads.append(addr)
                self.read_counts[addr] += 1
                self.reads += 1
                self._next_rd = self.cycle + self._interval
                self._beat(request, self.cycle)
                if request.done is not None:
                    self._pending_reads.popleft()
            if take_wr_req and self._high(wr_req.valid, "wr_req__valid"):
                request = self._take_request(wr_req, "write")
                if request is not None:
                    self._pending_writes.append(request)
            if take_wr_data and self._high(wr_data.valid, "wr_data__valid"):
                word = self._payload(wr_data)
                if not self._pending_writes:
                    shown = "X" if word is None else f"{word:#x}"
                    self._error(f"write beat {shown} with no write request pending")
                else:
                    request = self._pending_writes[0]
                    addr = request.addr + request.beats
                    if word is not None:
                        self.memory[addr] = word
                    self.write_counts[addr] += 1
                    self.writes += 1
                    self._next_wr = self.cycle + self._interval
                    self._beat(request, self.cycle)
                    if request.done is not None:
                        self._pending_writes.popleft()
            await RisingEdge(self._clk)
