"""The analytic performance model: cycles and access counts of a mapped layer.

Two kinds of numbers live here, kept apart on purpose:

* **Access counts** (MACs, gated MACs, scratchpad, global-buffer, psum-buffer and DRAM words,
  ifmap-network words) are the contract: they follow from the pass descriptors
  (hw/descriptor.py) and the PE's loop nest (hw/pe.py, tb/pe_vectors.py) exactly, and the
  RTL's counters must equal them.
* **Cycles** come from per-phase rules (section "cycle rules" below). They are provisional:
  each rule is a named constant or a small function of one descriptor so that it can be tuned
  against the RTL's cycle counters without touching anything else.

The dataflow is the descriptor's: WS has no psum-scratchpad traffic and ``chans*taps``
psum-buffer updates per output; OS counts ``chans*filt_rows`` channels per PE and loads the
filter block ``out_width`` times per pass (see hw/descriptor.py). Each has its own replay of
the compute phase.

Everything is computed from the same :class:`~hw.descriptor.PassDescriptor` objects that
:func:`gen.program.build_program` sends to the hardware. Passes that only differ in their
DRAM addresses are counted once and multiplied, so a whole network estimates in milliseconds.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from hw.check import CHECK_CYCLES
from hw.descriptor import PassDescriptor
from hw.params import AcceleratorParams
from hw.top import TOP_COUNTERS

from .program import PassPlanner, e_chunks, pass_descriptor, pass_plan

__all__ = ["PerfConfig", "Perf", "estimate", "cost", "pass_counts", "COUNTERS",
           "DMA_SETUP", "FLOAD_TAIL", "WB_TAIL", "LOAD_OVERHEAD", "EXEC_OVERHEAD",
           "compute_cycles", "timeline"]


@dataclass(frozen=True, kw_only=True)
class PerfConfig:
    """Assumptions about the world outside the accelerator (energy tables come later)."""
    #: Cycles from the acceptance of a read request to its first data beat.
    dram_latency: int = 16
    #: Cycles a write burst waits before its first data beat is accepted.
    dram_write_latency: int = 0
    #: Cycles per DRAM word on each data port: 1 when the DRAM keeps up with the port, k > 1
    #: for a DRAM that moves a word every k cycles (hw.params.dram_word_interval turns a
    #: bandwidth in bytes per cycle into this). With k = 1 every rule is exact. With k > 1 the
    #: plain bursts and write-back stay exact; the compressed paths keep their
    #: data-independent pace (the decoder's and encoder's), which holds while a DRAM word
    #: does not take longer than the values it carries (k <= 2 on the tested layers: within
    #: 0.5 %; at k = 8 the RTL is about 8 % slower than this model).
    dram_word_interval: int = 1

    def __post_init__(self):
        for name in ("dram_latency", "dram_write_latency"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} = {v!r} is out of range: allowed an integer >= 0")
        k = self.dram_word_interval
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"dram_word_interval = {k!r} is out of range: allowed an "
                             f"integer >= 1")


# ============================================================================================
# cycle rules (provisional: to be tuned against the RTL's counters)
# ============================================================================================

#: Cycles of the DMA phase outside the bursts (the cycle that sees the last burst done).
DMA_SETUP = 1
#: Cycles after the last filter word leaves the global buffer until the PEs hold it (three
#: more with ``params.registered_networks``: the stage and the FIFO beside the block RAM and
#: the filter network's register, see :data:`QUEUE_CYCLES`).
FLOAD_TAIL = 2
#: Cycles ``params.registered_networks`` adds before a global-buffer stream's first word
#: reaches the network's register: the stage register and the FIFO between the block RAM's
#: output and that register.
QUEUE_CYCLES = 2
#: Cycles of a write-back burst beyond one per lane (request, the requantizer's pipeline --
#: psum-buffer read, its register, shift, round and saturate --, beat hand-off, next row's
#: set-up).
WB_TAIL = 6
#: Loader cycles per pass outside its DMA: the check (hw/check.py), the cycle that starts the
#: first burst.
LOAD_OVERHEAD = CHECK_CYCLES + 1
#: Executor cycles per pass outside its phases: set-up (the array's IDs settle), done.
EXEC_OVERHEAD = 2


def read_burst_cycles(length: int, perf: PerfConfig) -> int:
    """One read burst: the request, the DRAM latency, one beat per word (the engine sees the
    last beat a cycle later); a slower DRAM spaces the beats."""
    return 1 + perf.dram_latency + length + max(0, length - 1) * (perf.dram_word_interval - 1)


def read_bursts(d: PassDescriptor) -> list[tuple[int, int]]:
    """(length, how many) of the read bursts of a pass's DMA-in phase (hw/descriptor.py
    phase 1): the filter block, then one burst per real channel unless all rows are padding
    (compressed: per channel the index burst; its data burst is :func:`rlc_channel_cycles`)."""
    if d.in_rlc and d.in_burst:
        return [(d.filt_words, 1), (d.in_idx_len, d.nch_valid)]
    return [(d.filt_words, 1)] + ([(d.in_burst, d.nch_valid)] if d.in_burst else [])


#: Cycles per compressed row beyond one per value: the decoder's last value leaves, the
#: decoder goes idle, the next row starts.
RLC_ROW_GAP = 3


def rlc_channel_cycles(d: PassDescriptor, perf: PerfConfig) -> int:
    """The data burst of one compressed channel: the request, the DRAM latency to the first
    word, then the decoder's pace -- one value per cycle and :data:`RLC_ROW_GAP` per row --
    which the DRAM (one word per cycle, each word at least one value) always keeps ahead of;
    so it does not depend on how well the rows compress."""
    return 1 + perf.dram_latency + (d.row_hi - d.row_lo) * (d.in_width + RLC_ROW_GAP)


def dma_in_cycles(d: PassDescriptor, perf: PerfConfig) -> int:
    rlc = d.nch_valid * rlc_channel_cycles(d, perf) if d.in_rlc and d.in_burst else 0
    return DMA_SETUP + sum(k * read_burst_cycles(n, perf) for n, k in read_bursts(d)) + rlc


def dram_rd_stall(d: PassDescriptor, perf: PerfConfig) -> int:
    """Cycles the read engine waits for a beat: all of the latency but the request cycle."""
    bursts = sum(k for _, k in read_bursts(d))
    spacing = sum(k * max(0, n - 1) for n, k in read_bursts(d)) * (perf.dram_word_interval - 1)
    if d.in_rlc and d.in_burst:
        bursts += d.nch_valid          # the data bursts (the decoder never starves after)
    return max(0, perf.dram_latency - 1) * bursts + spacing


def fload_cycles(d: PassDescriptor, registered: bool = False) -> int:
    """One global-buffer word per cycle, multicast to a row group of PEs (``registered``:
    the array's ``registered_networks``)."""
    return d.filt_words + FLOAD_TAIL + (1 + QUEUE_CYCLES) * int(registered)


def gin_words(d: PassDescriptor) -> int:
    """Words the ifmap network sends in a pass (one per cycle, with or without targets)."""
    return d.padded_width * d.chans * d.vgroups * d.nrows


def ring_cols(chans: int, ifmap_depth: int) -> int:
    """Window columns a PE's ifmap scratchpad ring holds (as the controller programs it)."""
    return ifmap_depth // chans


def ifmap_start(registered: bool) -> int:
    """The compute replays' cycle "word -1" was taken: the ifmap network offers word 0 the
    cycle after, in cycle 2 (the global buffer's read, then the network's register), or 4
    with ``registered_networks`` (read, the stage, the FIFO, the register)."""
    return 1 + QUEUE_CYCLES * int(registered)


def compute_cycles(d: PassDescriptor, ifmap_depth: int, lanes: int = 1,
                   registered: bool = False) -> int:
    """Cycles of the compute phase, from the RTL's rules (see :func:`_compute_timing`,
    :func:`_compute_timing_ws`, :func:`_compute_timing_os`); ``registered``: the array's
    ``registered_networks``."""
    args = (d.taps, d.chans, d.filters, d.stride, d.vgroups, d.filt_rows, d.ncols,
            d.padded_width, d.out_width, d.nrows, ring_cols(d.pe_chans, ifmap_depth),
            ifmap_start(registered))
    lag = int(registered)           # the lockstep ``go`` is a flip-flop (see the replays)
    if d.is_ws:
        return _compute_timing_ws(*args, lag)
    if d.is_os:
        return _compute_timing_os(*args, lanes, lag)
    return _compute_timing(*args)


@functools.lru_cache(maxsize=4096)
def _compute_timing(S, q, p, st, vg, R, ncols, width, F, nrows, ring, a0) -> int:
    """Event-level replay of the compute phase; cycle 0 is the phase's first cycle.

    The ifmap network offers word ``n`` the cycle after word ``n-1`` was taken (word 0 the
    cycle after ``a0``, see :func:`ifmap_start`) and a word is taken as soon as its targets
    (the PEs of one diagonal, which all behave alike) are ready. A PE takes column ``col``
    once it has finished the steps that free a slot of its ring (``col < x*stride +
    ring``); it issues the ``p*q*S`` MAC slots of
    output step ``x`` back to back, starting the cycle after the last word of column
    ``x*stride + S - 1`` arrived and after step ``x-1``. A finished psum reaches the PE's
    output register 4 cycles after its slot issued and climbs the column one PE per cycle;
    the phase ends when the top PEs' last psums are written, every PE is idle and the
    network has sent its last word.
    """
    P = p * q * S
    diag = {}
    rows_of = []                        # per PE column j: diagonal index of rows 0..vg*R-1
    for j in range(ncols):
        col = []
        for r in range(vg * R):
            key = (r // R, r % R + j * st)
            col.append(diag.setdefault(key, len(diag)))
        rows_of.append(col)
    ends = [[] for _ in diag]           # per diagonal: last-slot issue cycle of each step
    # (1 + words without targets before it, diagonal, its ends) of each word with targets,
    # in the network's order within one (column, channel): for s: for h
    seq, skip = [], 0
    for s in range(vg):
        for h in range(nrows):
            dg = diag.get((s, h))
            if dg is None:
                skip += 1
            else:
                seq.append((skip + 1, dg, ends[dg]))
                skip = 0
    last_word = [0] * len(diag)         # per diagonal: cycle its last word was taken
    a = a0                              # cycle the previous word was taken
    done = 0                            # output steps issued so far (alike on every diagonal)
    sweep = sum(step for step, _, _ in seq) + skip     # cycles of one channel's words, unblocked
    for col in range(width):
        need = 0 if col < ring else min(F, (col - ring) // st + 1)
        steps = min(F, (col - S + 1) // st + 1) if col >= S - 1 else 0
        if q > 1:
            # channel 0: a word waits for its diagonal to free a ring slot (step need-1 done)
            if need:
                for step, _, e in seq:
                    t = a + step
                    u = e[need - 1]
                    a = u + 1 if u >= t else t
                a += skip
            else:
                a += sweep
            # channels 1 .. q-1 never wait: each word follows its diagonal's previous word,
            # which had the slot already, by a whole sweep
            a += (q - 2) * sweep
        for step, dg, e in seq:         # the last channel: its words complete new windows
            t = a + step
            if need and e[need - 1] >= t:
                t = e[need - 1] + 1
            last_word[dg] = a = t
            if steps > done:
                # step x starts after the word and after step x-1: back to back
                start = t + 1 if not e or e[-1] <= t else e[-1] + 1
                if steps == done + 1:
                    e.append(start + P - 1)
                else:
                    e.extend(range(start + P - 1, start + (steps - done) * P, P))
        a += skip
        done = steps
    z = a + 1                           # the network is empty from here
    for j in range(ncols):
        ov_prev = None
        out_valid = []
        for r, dg in enumerate(rows_of[j]):
            load = ends[dg][-1] + 3
            if ov_prev is not None:
                load = max(load, ov_prev)
            ov_prev = load + 1
            out_valid.append(ov_prev)
        top = len(out_valid) - 1
        for r, dg in enumerate(rows_of[j]):
            row_done = max(ends[dg][-1] + 1, last_word[dg] + 1)
            emptied = out_valid[r] + 1 if r == top else out_valid[r + 1]
            z = max(z, max(row_done + 1, emptied) + 1)
        z = max(z, out_valid[top] + 1)
    return z + 1


@functools.lru_cache(maxsize=4096)
def _compute_timing_ws(S, q, p, st, vg, R, ncols, width, F, nrows, ring, a0, lag) -> int:
    """WS: the rules of :func:`_compute_timing`, but all PEs issue in lockstep -- output step
    ``x`` (``p*q*S`` slots back to back) starts ``1 + lag`` cycles after the last word any PE
    needs for it (channel q-1 of column ``x*stride + S - 1``) was taken, and after step
    ``x-1`` (``lag`` = 1 with ``registered_networks``: the lockstep ``go`` is a flip-flop
    that learns of a word, or of a filter reload's last word, a cycle after it was taken).
    The last slot's product reaches the psum buffer 5 cycles after it issued; the phase ends
    when that write is done, every PE is idle and the network has sent its last word.
    A column's words are replayed at once (a running maximum, as in OS)."""
    P = p * q * S
    hit = np.zeros((vg, nrows), dtype=bool)         # (s, h) words that have targets
    for j in range(ncols):
        for r in range(vg * R):
            hit[r // R, r % R + j * st] = True
    mask = np.tile(hit.ravel(), q)                  # for c: for s: for h
    lastk = int(np.flatnonzero(mask)[-1])           # the column's last targeted word
    k = np.arange(1, q * vg * nrows + 1)
    e = []                                          # last-slot issue cycle of each step
    a, last = a0, 0                                 # last word taken; last targeted one
    for col in range(width):
        need = 0 if col < ring else min(F, (col - ring) // st + 1)
        if need:
            b = np.where(mask, e[need - 1] + 1, 0)
            t = k + np.maximum.accumulate(np.maximum(b - k, a))
        else:
            t = k + a
        a = int(t[-1])
        last = tq = int(t[lastk])
        while len(e) < F and len(e) * st + S - 1 <= col:
            start = tq + 1 + lag if not e else max(e[-1] + 1, tq + 1 + lag)
            e.append(start + P - 1)
    z = max(a + 1, last + 3, e[-1] + 6)
    return z + 1


@functools.lru_cache(maxsize=4096)
def _compute_timing_os(S, q, p, st, vg, R, ncols, width, F, nrows, ring, a0,
                       lanes, lag) -> int:
    """OS: PE ``(s, j)`` takes the words of channel group ``s``, rows ``j*st .. j*st+R-1``
    (``q*R`` words per column) and issues ``p*q*R*S`` slots per output, all PEs in lockstep
    (as in WS). Before each output but the first the PEs reload their filters: the loader
    streams the block again (word 0 of the first reload offered a cycle after a0, then one word
    per cycle), row group after row group (``lanes`` PE rows each), starting when the PEs have
    finished the previous output (they take ifmap words meanwhile). Output step ``x`` starts
    ``1 + lag`` cycles after the last word any PE needs for it was taken and after the last
    group's last reload word (``lag`` as in :func:`_compute_timing_ws`), and after step
    ``x-1``. The psum chains drain as in RS.

    The network's words of a column are replayed at once: word ``k`` is taken at ``t_k =
    max(t_{k-1} + 1, b_k)`` (``b_k``: when its targets have ring room), a running maximum.
    """
    P = p * q * R * S
    npe = vg * ncols
    s_of = np.repeat(np.arange(vg), ncols)          # PE id = s*ncols + j
    j_of = np.tile(np.arange(ncols), vg)
    groups = -(-vg // lanes)
    hit = np.zeros((vg, nrows), dtype=bool)         # (s, h) words that have targets
    for i in range(R):
        hit[s_of, j_of * st + i] = True
    mask = np.tile(hit.ravel(), q)                  # for c: for s: for h
    last_idx = ((q - 1) * vg + s_of) * nrows + j_of * st + R - 1   # a PE's last word of a column
    k = np.arange(1, q * vg * nrows + 1)
    e = []                                          # last-slot issue cycle of each step
    # last word taken, last reload word taken (word 0 of each offered the cycle after; the
    # first reload follows the first output, long after its read)
    a, ts = a0, a0
    lw = np.zeros(npe, dtype=np.int64)              # cycle each PE's last word was taken
    for col in range(width):
        need = 0 if col < ring else min(F, (col - ring) // st + 1)
        if need:
            b = np.where(mask, e[need - 1] + 1, 0)
            t = k + np.maximum.accumulate(np.maximum(b - k, a))
        else:
            t = k + a
        a = int(t[-1])
        lw = t[last_idx]
        if len(e) < F and len(e) * st + S - 1 == col:   # every window of the step is in
            start = int(lw.max()) + 1 + lag
            if e:
                for _ in range(groups):
                    ts = max(ts + 1, e[-1] + 1) + P - 1
                start = max(start, e[-1] + 1, ts + 1 + lag)
            e.append(start + P - 1)
    z = a + 1
    for j in range(ncols):
        ov_prev = None
        out_valid = []
        for s in range(vg):
            load = e[-1] + 3
            if ov_prev is not None:
                load = max(load, ov_prev)
            ov_prev = load + 1
            out_valid.append(ov_prev)
        top = vg - 1
        for s in range(vg):
            row_done = max(e[-1] + 1, int(lw[s * ncols + j]) + 1)
            emptied = out_valid[s] + 1 if s == top else out_valid[s + 1]
            z = max(z, max(row_done + 1, emptied) + 1)
        z = max(z, out_valid[top] + 1)
    return z + 1


def write_burst_cycles(d: PassDescriptor, perf: PerfConfig, lanes: int) -> int:
    """One write-back burst: the request, one cycle per lane of its words (a psum-buffer read,
    requantized and packed on the way), the hand-off of the last beat, the next set-up."""
    pace = max(lanes, perf.dram_word_interval)       # a beat per lanes, or per DRAM word
    return 1 + perf.dram_write_latency + lanes + (d.out_row_words - 1) * pace + WB_TAIL


#: Cycles per compressed output row beyond one per value (encoder start, the requantizer's
#: four stages, the encoder's last word into the write stage, the row's end).
RLC_WB_ROW = 7


def rlc_index_words(d: PassDescriptor, params: AcceleratorParams) -> int:
    """Index words the write-back of a compressed pass writes per filter."""
    return -(-d.ncols // max(1, params.dram_width // 16))


def writeback_cycles(d: PassDescriptor, perf: PerfConfig, lanes: int,
                     params: AcceleratorParams | None = None) -> int:
    if not d.last:
        return 0
    if d.out_rlc:
        # per filter: the rows (words leave one per cycle as the encoder makes them, in
        # one-word writes, so the rows' pace does not depend on the data), then the index
        # request and its beats
        return d.p_valid * (d.ncols * (d.out_width + RLC_WB_ROW) + 1
                            + rlc_index_words(d, params))
    return d.p_valid * d.ncols * write_burst_cycles(d, perf, lanes)


def dram_wr_stall(d: PassDescriptor, perf: PerfConfig, lanes: int = 1) -> int:
    if d.out_rlc or not d.last:
        return 0
    slow = max(0, perf.dram_word_interval - lanes) * (d.out_row_words - 1)
    return d.p_valid * d.ncols * (perf.dram_write_latency + slow)


def cycle_counts(d: PassDescriptor, perf: PerfConfig, params: AcceleratorParams) -> dict:
    c = dict(dma_in_cycles=dma_in_cycles(d, perf),
             fload_cycles=fload_cycles(d, params.registered_networks),
             compute_cycles=compute_cycles(d, params.ifmap_spad_depth, params.lanes,
                                           params.registered_networks),
             writeback_cycles=writeback_cycles(d, perf, params.lanes, params))
    c["load_cycles"] = LOAD_OVERHEAD + c["dma_in_cycles"]
    c["exec_cycles"] = (EXEC_OVERHEAD + c["fload_cycles"] + c["compute_cycles"]
                        + c["writeback_cycles"])
    # A pass alone: the loader, the hand-off cycle, the executor.
    c["cycles"] = c["load_cycles"] + 1 + c["exec_cycles"]
    c["dram_rd_stall"] = dram_rd_stall(d, perf)
    c["dram_wr_stall"] = dram_wr_stall(d, perf, params.lanes)
    return c


def timeline(descs, perf: PerfConfig, params: AcceleratorParams) -> dict[str, int]:
    """Cycles of a sequence of passes with the loader and the executor overlapping.

    Cycle 0 accepts the first descriptor. Pass k: the loader checks it (cycles A+1 ..
    A+CHECK_CYCLES), starts its first burst at w >= A+CHECK_CYCLES+1 (a ``sync`` pass waits
    there for the executor to be idle),
    runs the DMA (w+1 .. w+dma), is ready at r = w+dma+1 and hands the pass over at
    h = max(r, e_prev) -- the executor takes a ready pass in the cycle it finishes the previous
    one (e_prev), or later as soon as the pass is ready; the executor runs set-up at h+1 and is
    done at e = h + its cycles. The loader takes the next descriptor at h+1.
    Returns cycles (busy), overlap_cycles (loader DMA while the executor loads filters,
    computes or writes back) and dma_stall_cycles (executor idle while the loader works).
    """
    accept, e_prev, x_lo = 0, None, 0
    overlap = stall = 0
    for d in descs:
        c = cycle_counts(d, perf, params)
        w = accept + CHECK_CYCLES + 1
        if d.sync and e_prev is not None:
            w = max(w, e_prev + 1)
        dma_lo, dma_hi = w + 1, w + c["dma_in_cycles"]
        r = dma_hi + 1
        # the executor takes a loaded pass in its done cycle, else as soon as it is ready
        h = r if e_prev is None else max(r, e_prev)
        if e_prev is not None:
            # the executor's busy states of the previous pass: set-up+1 .. done-1
            overlap += max(0, min(dma_hi, e_prev - 1) - max(dma_lo, x_lo) + 1)
            stall += h - e_prev
        else:
            stall += h - accept
        x_lo = h + 2
        e_prev = h + c["exec_cycles"]
        accept = h + 1
    return {"cycles": e_prev or 0, "overlap_cycles": overlap, "dma_stall_cycles": stall}


# ============================================================================================
# access counts (the contract)
# ============================================================================================

#: Every counter of :class:`Perf`, in report order.
COUNTERS = TOP_COUNTERS   # the model predicts exactly the counters the RTL has


def pass_counts(d: PassDescriptor, perf: PerfConfig, params: AcceleratorParams, *,
                nz_slots: float = 0, nz_first: float = 0,
                nz_last: float = 0) -> dict[str, float]:
    """Every counter of one pass.

    The data enter through three sums over the pass's active PEs (each PE sees one padded
    ifmap row of ``q`` channels; a window slot is (output x, tap, channel)):
    ``nz_slots`` -- window slots holding a nonzero ifmap value; ``nz_first`` / ``nz_last``
    -- those of them in the first slot (tap 0, channel 0) / the last slot (tap S-1, channel
    q-1) of their window. Each nonzero slot is one MAC per filter; a zero one is gated.
    """
    p, q, S, F = d.filters, d.pe_chans, d.taps, d.out_width
    active = d.active_rows * d.ncols
    slots = active * F * q * S * p
    macs = p * nz_slots
    if d.is_ws:    # no psum is held in a PE: every slot updates the psum buffer
        psum_reads = psum_writes = 0
        updates = d.ncols * F * p * q * S
        buf_reads, buf_writes = updates - (0 if d.accumulate else d.ncols * F * p), updates
    else:
        if q * S > 1:  # first tap writes, middle taps read and write unless gated, last reads
            middle = p * (nz_slots - nz_first - nz_last)
            psum_reads = psum_writes = active * F * p + middle
        else:
            psum_reads = psum_writes = 0
        buf_reads, buf_writes = (d.ncols * p * F if d.accumulate else 0), d.ncols * p * F
    # OS loads the filter block again for every output column
    loads = F if d.is_os else 1
    in_words = d.nch_valid * d.in_burst
    c = cycle_counts(d, perf, params)
    # compressed transport: the static part of the DRAM words (index bursts); the data
    # words depend on the data and are added by estimate()
    dram_in = d.nch_valid * d.in_idx_len if d.in_rlc and d.in_burst else in_words
    if not d.last:
        dram_out = 0
    elif d.out_rlc:
        dram_out = d.p_valid * rlc_index_words(d, params)
    else:
        dram_out = d.p_valid * d.ncols * d.out_row_words
    c.update(
        macs=macs,
        gated_macs=slots - macs,
        filter_spad_reads=macs,
        filter_spad_writes=loads * active * p * q * S,
        ifmap_spad_reads=active * F * q * S,
        ifmap_spad_writes=active * d.padded_width * q,
        psum_spad_reads=psum_reads,
        psum_spad_writes=psum_writes,
        glb_reads=loads * d.filt_words + d.in_width * (d.row_hi - d.row_lo) * d.nch_valid,
        glb_writes=d.filt_words + in_words,
        psum_buf_reads=buf_reads + (d.p_valid * d.ncols * F if d.last else 0),
        psum_buf_writes=buf_writes,
        dram_read_words=d.filt_words + dram_in,
        dram_write_words=dram_out,
        gin_words=gin_words(d),
        passes=1,
    )
    return c


@dataclass
class Perf:
    """Counters of one layer (sums over its passes); see :func:`estimate`."""
    cycles: int = 0
    dma_in_cycles: int = 0
    fload_cycles: int = 0
    compute_cycles: int = 0
    writeback_cycles: int = 0
    dram_rd_stall: int = 0
    dram_wr_stall: int = 0
    macs: int = 0
    gated_macs: int = 0
    filter_spad_reads: int = 0
    filter_spad_writes: int = 0
    ifmap_spad_reads: int = 0
    ifmap_spad_writes: int = 0
    psum_spad_reads: int = 0
    psum_spad_writes: int = 0
    glb_reads: int = 0
    glb_writes: int = 0
    psum_buf_reads: int = 0
    psum_buf_writes: int = 0
    dram_read_words: int = 0
    dram_write_words: int = 0
    gin_words: int = 0
    passes: int = 0
    overlap_cycles: int = 0
    dma_stall_cycles: int = 0
    #: The layer's own MACs (N*M*E*F*C/groups*R*S), what utilization is measured against.
    macs_ideal: int = 0
    #: Bytes per DRAM word.
    word_bytes: int = 8
    #: None when the data were counted; else the zero share assumed for real ifmap values.
    zero_fraction: float | None = None
    #: Per-pass counters (dicts with the pass key n, group, mtile, echunk, ctile) on request.
    per_pass: list[dict] | None = field(default=None, repr=False)

    @property
    def dram_read_bytes(self) -> int:
        return self.dram_read_words * self.word_bytes

    @property
    def dram_write_bytes(self) -> int:
        return self.dram_write_words * self.word_bytes

    @property
    def dram_bytes(self) -> int:
        return self.dram_read_bytes + self.dram_write_bytes

    def pe_utilization(self, params: AcceleratorParams) -> float:
        """The layer's MACs over the MACs the whole array could do in ``cycles``."""
        return self.macs_ideal / (self.cycles * params.num_pes) if self.cycles else 0.0

    def counters(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTERS}

    def __add__(self, other: "Perf") -> "Perf":
        if not isinstance(other, Perf):
            return NotImplemented
        out = Perf(**{n: getattr(self, n) + getattr(other, n) for n in COUNTERS},
                   macs_ideal=self.macs_ideal + other.macs_ideal, word_bytes=self.word_bytes)
        return out


# ---- pass classes -------------------------------------------------------------------------

def _tile_classes(count: int) -> list[tuple[int, int]]:
    """(representative index, multiplicity): first, middle, last (they differ in accumulate,
    last and in the channel or filter count of the final tile)."""
    if count == 1:
        return [(0, 1)]
    out = [(0, 1)]
    if count > 2:
        out.append((1, count - 2))
    out.append((count - 1, 1))
    return out


def _pass_classes(mapping, in_rlc=None, out_rlc=None):
    """(descriptor, multiplicity) for each kind of pass, most frequent first: passes that
    differ only in DRAM addresses (n, the group, and most tiles) have equal counts."""
    layer = mapping.layer
    planner = PassPlanner(mapping, in_rlc=in_rlc, out_rlc=out_rlc)
    chunk_count = Counter()
    reps = {}
    for ch in planner.chunks:
        # compressed input: the index burst depends on where the chunk's rows sit
        key = (ch.ncols, ch.nrows, ch.row_lo, ch.row_hi) if in_rlc is None else (ch.index,)
        chunk_count[key] += 1
        reps.setdefault(key, ch)
    outer = layer.N * layer.groups
    last_ct = mapping.c_tiles - 1
    classes = []
    for key, nchunks in chunk_count.items():
        for ct, nct in _tile_classes(mapping.c_tiles):
            # the m-tiles differ only in p_valid, which only the write-back (last) uses
            mts = _tile_classes(mapping.m_tiles) if ct == last_ct else [(0, mapping.m_tiles)]
            for mt, nmt in mts:
                classes.append((outer * nchunks * nct * nmt, reps[key], ct, mt))
    classes.sort(key=lambda c: -c[0])
    for mult, chunk, ct, mt in classes:
        yield planner.descriptor(0, 0, mt, chunk, ct), mult


def cost(mapping, perf: PerfConfig = PerfConfig(), *,
         limit: int | None = None) -> tuple[int, int, int] | None:
    """(cycles, DRAM words read and written, passes): what :func:`gen.mapper.map_layer`
    ranks mappings by; the same rules as :func:`estimate`. With ``limit``, None as soon as
    the cycles are known to exceed it (the mapper's pruning)."""
    cycles = words = 0
    for d, mult in _pass_classes(mapping):
        c = cycle_counts(d, perf, mapping.params)
        # in steady state the next hand-off follows the slower of the two engines
        cycles += mult * max(c["load_cycles"] + 2, c["exec_cycles"])
        if limit is not None and cycles > limit:
            return None
        words += mult * (d.filt_words + d.nch_valid * d.in_burst
                         + (d.p_valid * d.ncols * d.out_row_words if d.last else 0))
    return cycles, words, mapping.passes


# ---- data-dependent sums ------------------------------------------------------------------

def _window_sums(mapping, nz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """nz_slots, nz_first, nz_last of every pass, indexed [n, group, ctile, echunk].

    ``nz`` is [N, C, H, W] (or broadcastable to it, e.g. [1, 1, H, W]): 1 where the ifmap is
    nonzero (or the probability of it). A PE's padded row meets output x at column
    x*stride + tap, so a real column w contributes to cover[w] slots per channel; a PE set
    reads local row h from mult[h] of its (filter row, column) pairs.
    """
    layer = mapping.layer
    q, vq = mapping.q, mapping.q * mapping.vgroups
    S, F, st, pad = layer.S, layer.F, layer.stride, layer.pad
    cols = np.arange(layer.W) + pad                       # padded column of each real one
    taps = np.arange(F)[:, None] * st + np.arange(S)[None, :]
    cover = np.bincount(taps.ravel(), minlength=layer.padded_width)[cols]
    cover0 = np.isin(cols, taps[:, 0]).astype(np.int64)
    cover1 = np.isin(cols, taps[:, S - 1]).astype(np.int64)
    chunks = e_chunks(layer, mapping.ncols)

    def row_mult(filter_rows):
        mult = np.zeros((len(chunks), layer.H), dtype=np.int64)
        for ch in chunks:
            local = (np.asarray(filter_rows)[:, None]
                     + np.arange(ch.ncols)[None, :] * st).ravel()
            local = local[(local >= ch.row_lo) & (local < ch.row_hi)]
            np.add.at(mult[ch.index], ch.h_first + local, 1)
        return mult

    mult = row_mult(range(layer.R))
    if mapping.dataflow == "os":
        # a PE's window holds all R rows: its first slot is row 0's, its last row R-1's
        mult0, mult1 = row_mult([0]), row_mult([layer.R - 1])
    else:
        mult0 = mult1 = mult
    G, Cg, N, C = layer.groups, layer.Cg, layer.N, layer.C
    ct = mapping.c_tiles
    k = np.arange(ct * vq) % vq % q                       # channel index c inside the PE
    out = []
    for cov, sel, mult in ((cover, None, mult), (cover0, k == 0, mult0),
                           (cover1, k == q - 1, mult1)):
        per_row = nz @ cov                                # [N', C', H]
        per_pass = np.broadcast_to(per_row @ mult.T, (N, C, len(chunks)))
        padded = np.zeros((N, G, ct * vq, len(chunks)), dtype=per_pass.dtype)
        padded[:, :, :Cg] = per_pass.reshape(N, G, Cg, len(chunks))
        if sel is not None:
            padded *= sel[None, None, :, None]
        out.append(padded.reshape(N, G, ct, vq, len(chunks)).sum(axis=3))
    return out[0], out[1], out[2]


def _rlc_data_words(mapping, in_rlc, out_rlc, ifmap, ofmap, zero_fraction,
                    out_zero_fraction, seed: int = 7) -> tuple[int, int]:
    """DRAM data words of a layer's compressed input (every pass's rows, so m-tiles re-read)
    and compressed output (each row once), from the data or from synthetic data with the
    given zero shares."""
    from .compress import row_words
    layer, params = mapping.layer, mapping.params
    rng = np.random.default_rng(seed)
    lim = 1 << (params.data_width - 1)

    def synthetic(shape, zf):
        v = rng.integers(1, lim, size=shape) * rng.choice([-1, 1], size=shape)
        return np.where(rng.random(shape) < zf, 0, v)

    rd = wr = 0
    if in_rlc is not None:
        x = ifmap if ifmap is not None else synthetic(
            (layer.N, layer.C, layer.H, layer.W), zero_fraction)
        words = row_words(np.asarray(x), params)                 # [N, C, H]
        for ch in e_chunks(layer, mapping.ncols):
            h0, h1 = ch.h_first + ch.row_lo, ch.h_first + ch.row_hi
            if h1 > h0:
                rd += int(words[:, :, h0:h1].sum())
        rd *= mapping.m_tiles
    if out_rlc is not None:
        y = ofmap if ofmap is not None else synthetic(
            (layer.N, layer.M, layer.E, layer.F),
            zero_fraction if out_zero_fraction is None else out_zero_fraction)
        wr = int(row_words(np.asarray(y), params).sum())
    return rd, wr


def estimate(mapping, *, ifmap=None, perf: PerfConfig = PerfConfig(),
             zero_fraction: float = 0.0, per_pass: bool = False, in_rlc=None, out_rlc=None,
             ofmap=None, out_zero_fraction: float | None = None) -> Perf:
    """Counters of ``mapping`` run on an accelerator with its parameters.

    MACs, gated MACs, filter scratchpad reads and psum scratchpad traffic depend on which
    ifmap values are zero. With ``ifmap`` (the layer's [N, C, H, W] input) they are counted
    exactly. Without it they are expected values, assuming each real (non-padding) ifmap value
    is zero with probability ``zero_fraction`` (default 0: dense data), rounded to integers;
    padding, channels beyond C/groups and rows outside the ifmap are always zeros (gated).
    All other counters do not depend on the data. ``per_pass=True`` also fills
    :attr:`Perf.per_pass`.

    ``in_rlc`` / ``out_rlc`` (gen/compress.py layouts): the input / output crosses DRAM run-
    length coded; its DRAM words then depend on the data: counted from ``ifmap`` / ``ofmap``
    when given, else from synthetic data with ``zero_fraction`` / ``out_zero_fraction``
    zeros (per-pass rows then leave out the compressed data words).
    """
    layer, params = mapping.layer, mapping.params
    if ifmap is not None:
        x = np.asarray(ifmap)
        want = (layer.N, layer.C, layer.H, layer.W)
        if x.shape != want:
            raise ValueError(f"ifmap has shape {x.shape}: allowed {want} [N, C, H, W]")
        nz = (x != 0).astype(np.int64)
        zf = None
    else:
        if isinstance(zero_fraction, bool) or not 0.0 <= float(zero_fraction) <= 1.0:
            raise ValueError(f"zero_fraction = {zero_fraction!r} is out of range: allowed "
                             f"0.0..1.0")
        zf = float(zero_fraction)
        nz = np.full((1, 1, layer.H, layer.W), 1.0 - zf)
    nz_slots, nz_first, nz_last = _window_sums(mapping, nz)

    totals = dict.fromkeys(COUNTERS, 0)
    for d, mult in _pass_classes(mapping, in_rlc, out_rlc):
        for name, v in pass_counts(d, perf, params).items():
            if name in totals:
                totals[name] += mult * v
    # Cycles depend on the order of the passes (the loader works one pass ahead).
    totals.update(timeline((d for _, d in pass_plan(mapping, in_rlc=in_rlc, out_rlc=out_rlc)),
                           perf, params))
    if in_rlc is not None or out_rlc is not None:
        rd, wr = _rlc_data_words(mapping, in_rlc, out_rlc, ifmap, ofmap, zero_fraction,
                                 out_zero_fraction)
        totals["dram_read_words"] += rd
        totals["dram_write_words"] += wr
    # The classes were counted as if every slot were zero. The data terms of pass_counts are
    # linear in the three sums and scale with p and q*S only, which all passes share; every
    # m-tile sees the same ifmap. So add (counts with the sums - counts without) once.
    d0 = pass_descriptor(mapping, 0, 0, 0, e_chunks(layer, mapping.ncols)[0], 0,
                         in_rlc=in_rlc, out_rlc=out_rlc)
    data = pass_counts(d0, perf, params, nz_slots=nz_slots.sum().item(),
                       nz_first=nz_first.sum().item(), nz_last=nz_last.sum().item())
    zero = pass_counts(d0, perf, params)
    for name in ("macs", "gated_macs", "filter_spad_reads", "psum_spad_reads",
                 "psum_spad_writes"):
        totals[name] += mapping.m_tiles * (data[name] - zero[name])
    result = Perf(**{n: int(round(v)) for n, v in totals.items()}, macs_ideal=layer.macs,
                  word_bytes=params.dram_width // 8, zero_fraction=zf)
    if per_pass:
        rows = []
        for key, d in pass_plan(mapping, in_rlc=in_rlc, out_rlc=out_rlc):
            idx = (key.n, key.group, key.ctile, key.echunk)
            c = pass_counts(d, perf, params, nz_slots=nz_slots[idx].item(),
                            nz_first=nz_first[idx].item(), nz_last=nz_last[idx].item())
            rows.append(dict(key._asdict(), **{n: int(round(v)) for n, v in c.items()}))
        result.per_pass = rows
    return result


def _main() -> None:  # pragma: no cover - a report, exercised by the tests through its parts
    import sys
    import time

    from hw.params import preset

    from .mapper import map_layer
    from .workload import NETWORKS

    params = preset(sys.argv[1] if len(sys.argv) > 1 else "eyeriss")
    net = sys.argv[2] if len(sys.argv) > 2 else "alexnet"
    total = Perf()
    for layer in NETWORKS[net]:
        t = time.perf_counter()
        m = map_layer(layer, params)
        p = estimate(m)
        dt = time.perf_counter() - t
        total = total + p
        print(f"{m.describe()}\n    cycles {p.cycles:,}  utilization "
              f"{p.pe_utilization(params):.1%}  DRAM {p.dram_bytes / 1e6:.2f} MB  "
              f"({dt * 1e3:.0f} ms)")
    print(f"{net} on {params.name}: {total.cycles:,} cycles, utilization "
          f"{total.pe_utilization(params):.1%}, DRAM {total.dram_bytes / 1e6:.2f} MB")


if __name__ == "__main__":
    _main()
