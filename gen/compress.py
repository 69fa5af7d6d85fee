"""Compressed feature maps in DRAM: the layout, a reference codec and the figures of merit.

Feature maps (all but the first layer's input) may cross DRAM run-length coded (hw/rlc.py,
the Eyeriss format; :func:`tb.golden.rlc_encode` is its definition). A pass reads a range of
rows of each channel, so the layout keeps rows addressable without decoding from the start:

* **Data**: each ``(n, c)`` channel plane owns ``plane_words = H * slot`` words, ``slot =
  ceil(W / pairs_per_word)`` (a row never needs more). Its rows are packed in row order from
  the plane's first word, each row its own RLC stream of ``W`` values (so each ends with a
  flagged word); a plane's unused tail is never read or written.
* **Index**: the row ends, in 16-bit entries, ``E = dram_width // 16`` per word (entry ``e``
  at bits ``[16e, 16e+16)``): entry of row ``h`` = words of the plane used by rows ``0..h``.
  Rows are grouped by the writer's e-chunks of ``ncw`` rows (the producing layer's ``ncols``):
  group ``g`` holds rows ``g*ncw ..`` in ``wpg = ceil(ncw / E)`` words, so each write-back
  pass writes whole index words and never shares one with another pass. Each plane has
  ``idx_words = ceil(H / ncw) * wpg`` index words.

A reader that wants rows ``[h0, h1)`` of a plane reads the index words holding entries
``h0 - 1`` (none when ``h0 = 0``: the start is 0) and ``h1 - 1`` -- one burst from the first
to the second -- then one data burst of ``end - start`` words.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw.params import AcceleratorParams

__all__ = ["IDX_BITS", "RLCLayout", "rlc_layout", "encode_row", "decode_row", "row_words",
           "pairs_in_rows", "index_entries_per_word", "entropy_bits"]

#: Bits of one index entry (a row end, in words from the plane's start).
IDX_BITS = 16


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def index_entries_per_word(params: AcceleratorParams) -> int:
    return params.dram_width // IDX_BITS


@dataclass(frozen=True)
class RLCLayout:
    """Where a compressed ``[N][C][H][W]`` tensor lives, relative to its base address."""
    N: int
    C: int
    H: int
    W: int
    ncw: int            # rows per index group (the writer's ncols)
    slot: int           # worst-case words of one row
    plane_words: int    # data words reserved per channel plane
    wpg: int            # index words per group
    idx_words: int      # index words per channel plane
    entries: int        # index entries per word

    @property
    def data_words(self) -> int:
        return self.N * self.C * self.plane_words

    @property
    def total_words(self) -> int:
        return self.N * self.C * (self.plane_words + self.idx_words)

    def plane(self, n: int, c: int) -> int:
        """Offset of plane (n, c)'s data."""
        return (n * self.C + c) * self.plane_words

    def index(self, n: int, c: int) -> int:
        """Offset of plane (n, c)'s index."""
        return self.data_words + (n * self.C + c) * self.idx_words

    def entry(self, h: int) -> tuple[int, int]:
        """(word within the plane's index, lane) of row h's end."""
        g, i = divmod(h, self.ncw)
        return g * self.wpg + i // self.entries, i % self.entries


def rlc_layout(params: AcceleratorParams, *, N: int, C: int, H: int, W: int,
               ncw: int) -> RLCLayout:
    """The layout of a compressed tensor; ValueError if a plane outgrows the 16-bit index."""
    slot = _ceil_div(W, params.rlc_pairs_per_word)
    plane = H * slot
    if plane >= 1 << IDX_BITS:
        raise ValueError(f"a compressed channel plane of H x W = {H} x {W} may need {plane} "
                         f"words: allowed < {1 << IDX_BITS} (16-bit row index)")
    E = index_entries_per_word(params)
    wpg = _ceil_div(ncw, E)
    return RLCLayout(N=N, C=C, H=H, W=W, ncw=ncw, slot=slot, plane_words=plane, wpg=wpg,
                     idx_words=_ceil_div(H, ncw) * wpg, entries=E)


# ---- the codec (format of hw/rlc.py; tb.golden.rlc_encode is the independent definition) --

def _fmt(params: AcceleratorParams):
    return params.rlc_run_bits, params.data_width, params.rlc_word_bits


def _pairs(row, max_run: int) -> list[tuple[int, int]]:
    pairs, run = [], 0
    values = [int(v) for v in row]
    for k, v in enumerate(values):
        last = k == len(values) - 1
        if v != 0 or last or run == max_run:
            pairs.append((run, v))
            run = 0
        else:
            run += 1
    return pairs


def encode_row(row, params: AcceleratorParams) -> list[int]:
    """RLC words of one row of ``W >= 1`` values."""
    rb, dw, wb = _fmt(params)
    per = params.rlc_pairs_per_word
    pb = rb + dw
    mask = (1 << dw) - 1
    pairs = _pairs(row, (1 << rb) - 1)
    words = []
    for s in range(0, len(pairs), per):
        word = 0
        for k, (run, level) in enumerate(pairs[s:s + per]):
            word |= (run | ((level & mask) << rb)) << (k * pb)
        words.append(word)
    words[-1] |= 1 << (wb - 1)
    return words


def decode_row(words, count: int, params: AcceleratorParams) -> tuple[np.ndarray, int]:
    """Decode ``count`` values from the front of ``words``: (values, words used).

    Raises ValueError on a malformed stream, as the hardware decoder flags an error: too few
    words, a misplaced last-word flag, a pair overshooting ``count``, nonzero unused slots or
    padding."""
    rb, dw, wb = _fmt(params)
    per = params.rlc_pairs_per_word
    pb = rb + dw
    out: list[int] = []
    used = 0
    while len(out) < count:
        if used >= len(words):
            raise ValueError(f"RLC stream ends after {len(out)} of {count} values")
        word = int(words[used])
        used += 1
        rest = 0
        for k in range(per):
            pair = (word >> (k * pb)) & ((1 << pb) - 1)
            run, level = pair & ((1 << rb) - 1), pair >> rb
            if level >> (dw - 1):
                level -= 1 << dw
            out += [0] * run + [level]
            if len(out) >= count:
                rest = word >> ((k + 1) * pb) & ((1 << (wb - 1 - (k + 1) * pb)) - 1)
                break
        else:
            rest = word >> (per * pb) & ((1 << (wb - 1 - per * pb)) - 1)
        if len(out) > count or (len(out) == count) != bool(word >> (wb - 1)) or rest:
            raise ValueError(f"RLC stream malformed at word {used - 1} "
                             f"({len(out)} of {count} values)")
    return np.array(out, dtype=np.int64), used


def pairs_in_rows(rows: np.ndarray, max_run: int) -> np.ndarray:
    """Pairs the encoder makes for each row of ``rows [..., W]`` (vectorised count)."""
    x = np.asarray(rows)
    W = x.shape[-1]
    flat = x.reshape(-1, W)
    count = np.zeros(len(flat), dtype=np.int64)
    # Walk the columns once, all rows at a time: the encoder's run counter per row.
    run = np.zeros(len(flat), dtype=np.int64)
    for k in range(W):
        emit = (flat[:, k] != 0) | (k == W - 1) | (run == max_run)
        count += emit
        run = np.where(emit, 0, run + 1)
    return count.reshape(x.shape[:-1])


def row_words(rows: np.ndarray, params: AcceleratorParams) -> np.ndarray:
    """RLC words of each row of ``rows [..., W]``."""
    pairs = pairs_in_rows(rows, params.rlc_max_run)
    return -(-pairs // params.rlc_pairs_per_word)


def entropy_bits(rows: np.ndarray, params: AcceleratorParams) -> float:
    """The entropy bound of the run/level source of ``rows [..., W]``: the bits an ideal code
    would need for the same (run, level) pairs. Each pair is split into a symbol -- its run,
    the level's sign and magnitude class (bit length) -- whose empirical entropy is counted,
    and the level's bits below its leading one, counted raw (values uniform within a class).
    The split keeps the estimate honest on small maps, where the plain empirical entropy of
    16-bit levels would be capped at log2 of the number of pairs."""
    x = np.asarray(rows)
    W = x.shape[-1]
    flat = x.reshape(-1, W).astype(np.int64)
    max_run = params.rlc_max_run
    runs, levels = [], []
    run = np.zeros(len(flat), dtype=np.int64)
    for k in range(W):
        v = flat[:, k]
        emit = (v != 0) | (k == W - 1) | (run == max_run)
        runs.append(run[emit])
        levels.append(v[emit])
        run = np.where(emit, 0, run + 1)
    if not runs:
        return 0.0
    r = np.concatenate(runs)
    lv = np.concatenate(levels)
    if not len(r):
        return 0.0
    mag = np.abs(lv)
    cls = np.zeros(len(mag), dtype=np.int64)
    nz = mag > 0
    cls[nz] = np.floor(np.log2(mag[nz])).astype(np.int64) + 1     # bit length
    symbol = (r * 64 + cls) * 2 + (lv < 0)
    _, counts = np.unique(symbol, return_counts=True)
    p = counts / counts.sum()
    coded = float(-(counts * np.log2(p)).sum())
    raw = float(np.maximum(cls - 1, 0).sum())
    return coded + raw
