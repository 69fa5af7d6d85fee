"""Programs: a mapped layer as pass descriptors plus the DRAM image they run on.

DRAM words are ``params.dram_width`` bits wide and hold ``L = params.lanes`` values: lane ``l``
sits at bits ``[l*dw, (l+1)*dw)`` as a ``dw``-bit two's-complement value (``dw =
data_width``); bits above ``L*dw`` are zero. Activations ``[N][C][H][W]`` live as
``[N][C][H][row_words]`` words, ``row_words = ceil(W/L)``, unused lanes zero, so a layer's
output region is the next layer's input as it stands.

The image of a :class:`Program` is laid out as: input activations at ``in_base = 0``; one
filter block per (group, m-tile, c-tile) from ``filt_base``, each in the word/lane order of
hw/descriptor.py phase 2; the output activations (zero) from ``out_base``.

:func:`execute` is a numpy reference of the controller: it runs the descriptors exactly as
hw/descriptor.py says (DMA into a global-buffer array, filter load, the ifmap network and the
PE columns, the psum buffers, write-back with requantization) on a copy of the image. It only
reads the descriptors and the parameters, never the mapping, so agreeing with the golden
convolution proves the descriptors right before any RTL exists.
"""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from hw.descriptor import DATAFLOW_CODES, PassDescriptor
from hw.params import AcceleratorParams

from .compress import RLCLayout, decode_row, encode_row, rlc_layout

__all__ = ["pack_activations", "unpack_activations", "pack_lanes", "unpack_words", "Chunk",
           "PassKey", "e_chunks", "filter_block_words", "PassPlanner", "pass_descriptor",
           "pass_plan", "dram_layout", "Program", "check_chain", "filter_blocks", "build_program",
           "execute", "EXEC_COUNTERS", "decode_tensor", "encode_tensor"]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# ---- words and lanes ----------------------------------------------------------------------

def _check_values(name: str, x: np.ndarray, dw: int) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} has dtype {arr.dtype}: allowed integer dtypes only")
    arr = arr.astype(np.int64)
    lo, hi = -(1 << (dw - 1)), (1 << (dw - 1)) - 1
    if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
        bad = int(arr.min()) if int(arr.min()) < lo else int(arr.max())
        raise ValueError(f"{name} holds {bad}: allowed [{lo}, {hi}] ({dw}-bit data)")
    return arr


def pack_lanes(lanes: np.ndarray, params: AcceleratorParams) -> list[int]:
    """Words from an ``[n, L]`` array of signed lane values (assumed to fit ``dw`` bits)."""
    dw, L = params.data_width, params.lanes
    lanes = np.asarray(lanes, dtype=np.int64).reshape(-1, L)
    raw = (lanes & ((1 << dw) - 1)).astype(np.uint64)
    if L * dw <= 64:
        words = np.zeros(len(raw), dtype=np.uint64)
        for lane in range(L):
            words |= raw[:, lane] << np.uint64(lane * dw)
        return [int(w) for w in words]
    out = []
    for row in raw.tolist():
        word = 0
        for lane, v in enumerate(row):
            word |= v << (lane * dw)
        out.append(word)
    return out


def unpack_words(words, params: AcceleratorParams) -> np.ndarray:
    """``[n, L]`` int64 signed lane values of ``n`` words."""
    dw, L = params.data_width, params.lanes
    mask, sign = (1 << dw) - 1, 1 << (dw - 1)
    if L * dw <= 64:
        arr = np.asarray(list(words) if not isinstance(words, np.ndarray) else words,
                         dtype=np.uint64).reshape(-1)
        raw = np.stack([(arr >> np.uint64(lane * dw)) & np.uint64(mask) for lane in range(L)],
                       axis=1).astype(np.int64) if arr.size else np.zeros((0, L), np.int64)
    else:
        raw = np.array([[(int(w) >> (lane * dw)) & mask for lane in range(L)] for w in words],
                       dtype=np.int64).reshape(-1, L)
    return np.where(raw & sign, raw - (1 << dw), raw)


def pack_activations(x, params: AcceleratorParams) -> list[int]:
    """Words of activations ``[N][C][H][W]`` laid out as ``[N][C][H][ceil(W/L)]`` words."""
    dw, L = params.data_width, params.lanes
    arr = _check_values("activations", x, dw)
    if arr.ndim != 4:
        raise ValueError(f"activations have shape {arr.shape}: allowed 4-D [N, C, H, W]")
    n, c, h, w = arr.shape
    rw = _ceil_div(w, L)
    padded = np.zeros((n, c, h, rw * L), dtype=np.int64)
    padded[..., :w] = arr
    return pack_lanes(padded.reshape(-1, L), params)


def unpack_activations(words, shape, params: AcceleratorParams) -> np.ndarray:
    """Activations ``[N, C, H, W]`` (int64) from their words (see :func:`pack_activations`)."""
    n, c, h, w = (int(v) for v in shape)
    rw = _ceil_div(w, params.lanes)
    words = list(words)
    if len(words) != n * c * h * rw:
        raise ValueError(f"{len(words)} words do not hold activations of shape {tuple(shape)}: "
                         f"allowed exactly {n * c * h * rw} words")
    lanes = unpack_words(words, params)
    return lanes.reshape(n, c, h, rw * params.lanes)[..., :w].copy()


# ---- pass geometry ------------------------------------------------------------------------

class Chunk(NamedTuple):
    """Rows of the ofmap one pass computes (one per PE column) and the ifmap rows they read."""
    index: int
    e0: int          # first ofmap row
    ncols: int       # ofmap rows = active PE columns
    h_first: int     # ifmap row of local row 0 (negative inside the top padding)
    nrows: int       # local ifmap rows
    row_lo: int      # local rows [row_lo, row_hi) lie inside the ifmap
    row_hi: int


class PassKey(NamedTuple):
    n: int
    group: int
    mtile: int
    echunk: int
    ctile: int


def e_chunks(layer, ncols: int) -> list[Chunk]:
    """The e-chunks of a layer mapped with ``ncols`` columns per pass, top to bottom."""
    chunks = []
    for index, e0 in enumerate(range(0, layer.E, ncols)):
        nc = min(ncols, layer.E - e0)
        h_first = e0 * layer.stride - layer.pad
        nrows = (nc - 1) * layer.stride + layer.R
        row_lo = min(max(-h_first, 0), nrows)
        row_hi = min(max(layer.H - h_first, row_lo), nrows)
        chunks.append(Chunk(index, e0, nc, h_first, nrows, row_lo, row_hi))
    return chunks


def filter_block_words(mapping) -> int:
    """Words of one filter block: ceil(vgroups*R / L) groups of p*q*S words (OS: one PE row
    per channel group holding all R filter rows, ceil(vgroups / L) groups of p*q*R*S)."""
    layer, params = mapping.layer, mapping.params
    if mapping.dataflow == "os":
        return (_ceil_div(mapping.vgroups, params.lanes)
                * mapping.p * mapping.q * layer.R * layer.S)
    return (_ceil_div(mapping.vgroups * layer.R, params.lanes)
            * mapping.p * mapping.q * layer.S)


def dram_layout(mapping) -> dict:
    """Word addresses and sizes of the three regions of a program's DRAM image."""
    layer, L = mapping.layer, mapping.params.lanes
    in_words = layer.N * layer.C * layer.H * _ceil_div(layer.W, L)
    blocks = layer.groups * mapping.m_tiles * mapping.c_tiles
    filt_words = blocks * filter_block_words(mapping)
    out_words = layer.N * layer.M * layer.E * _ceil_div(layer.F, L)
    return dict(in_base=0, in_words=in_words, filt_base=in_words, filt_words=filt_words,
                blocks=blocks, out_base=in_words + filt_words, out_words=out_words,
                total=in_words + filt_words + out_words)


class PassPlanner:
    """Builds the descriptors of one mapping (the per-layer values computed once)."""

    def __init__(self, mapping, *, in_base: int = 0, filt_base: int = 0, out_base: int = 0,
                 in_rlc: RLCLayout | None = None, out_rlc: RLCLayout | None = None):
        layer, params = mapping.layer, mapping.params
        self.in_rlc, self.out_rlc = in_rlc, out_rlc
        L = params.lanes
        self.mapping = mapping
        self.in_base, self.filt_base, self.out_base = in_base, filt_base, out_base
        self.vq = mapping.vgroups * mapping.q
        self.row_words = _ceil_div(layer.W, L)
        self.out_row_words = _ceil_div(layer.F, L)
        self.fw = filter_block_words(mapping)
        self.m_tiles, self.c_tiles = mapping.m_tiles, mapping.c_tiles
        self.chunks = e_chunks(layer, mapping.ncols)
        self.common = dict(
            filt_rows=layer.R, taps=layer.S, chans=mapping.q, filters=mapping.p,
            stride=layer.stride, vgroups=mapping.vgroups, in_width=layer.W, pad=layer.pad,
            out_width=layer.F, row_words=self.row_words, filt_words=self.fw,
            in_ch_stride=layer.H * self.row_words, out_ch_stride=layer.E * self.out_row_words,
            out_row_words=self.out_row_words, shift=layer.shift_for(params.data_width),
            relu=layer.relu, dataflow=DATAFLOW_CODES[mapping.dataflow])

    def descriptor(self, n: int, group: int, mtile: int, chunk: Chunk,
                   ctile: int) -> PassDescriptor:
        layer, p = self.mapping.layer, self.mapping.p
        rw, vq = self.row_words, self.vq
        Cg, Mg = layer.Cg, layer.Mg
        ch_words = chunk.nrows * rw
        in_burst = (chunk.row_hi - chunk.row_lo) * rw
        c0 = ctile * vq
        rlc = {}
        cin = group * Cg + c0
        m0 = group * Mg + mtile * p
        if in_burst and self.in_rlc is not None:
            lay = self.in_rlc
            h0, h1 = chunk.h_first + chunk.row_lo, chunk.h_first + chunk.row_hi
            wa, lane_a = lay.entry(h0 - 1) if h0 else (None, 0)
            wb, lane_b = lay.entry(h1 - 1)
            first = wb if wa is None else wa
            in_dram = self.in_base + lay.plane(n, cin)
            rlc.update(in_rlc=True, in_idx=self.in_base + lay.index(n, cin) + first,
                       in_idx_len=wb - first + 1, in_idx_stride=lay.idx_words,
                       in_lane_a=lane_a, in_lane_b=lane_b, in_a_zero=h0 == 0,
                       in_ch_stride=lay.plane_words)
        elif in_burst:
            in_dram = self.in_base + ((n * layer.C + cin) * layer.H
                                      + chunk.h_first + chunk.row_lo) * rw
        else:
            in_dram = self.in_base  # every row is padding: no request is made
            if self.in_rlc is not None:
                rlc.update(in_rlc=True, in_ch_stride=self.in_rlc.plane_words)
        if self.out_rlc is not None:
            lay = self.out_rlc
            out_dram = self.out_base + lay.plane(n, m0)
            rlc.update(out_rlc=True, out_ch_stride=lay.plane_words,
                       out_idx=self.out_base + lay.index(n, m0) + chunk.index * lay.wpg,
                       out_idx_stride=lay.idx_words, out_first=chunk.e0 == 0)
        else:
            out_dram = self.out_base + ((n * layer.M + m0) * layer.E + chunk.e0) \
                * self.out_row_words
        fields = {**self.common, **rlc}
        return PassDescriptor(
            **fields, ncols=chunk.ncols, nrows=chunk.nrows, row_lo=chunk.row_lo,
            row_hi=chunk.row_hi, nch_valid=min(vq, Cg - c0), ch_words=ch_words,
            filt_glb=vq * ch_words,
            filt_dram=self.filt_base
            + ((group * self.m_tiles + mtile) * self.c_tiles + ctile) * self.fw,
            in_dram=in_dram, in_burst=in_burst,
            accumulate=ctile > 0, last=ctile == self.c_tiles - 1,
            p_valid=min(p, Mg - mtile * p), out_dram=out_dram)


def pass_descriptor(mapping, n: int, group: int, mtile: int, chunk: Chunk, ctile: int, *,
                    in_base: int = 0, filt_base: int = 0, out_base: int = 0,
                    in_rlc: RLCLayout | None = None,
                    out_rlc: RLCLayout | None = None) -> PassDescriptor:
    """The descriptor of pass (n, group, m-tile, e-chunk, c-tile), every field as
    hw/descriptor.py defines it: ``e0`` = the chunk's first ofmap row, ``h_first = e0*stride
    - pad``, ``row_lo``/``row_hi`` clamp the chunk's ifmap rows to the ifmap, ``nch_valid``
    counts the c-tile's real channels, ``p_valid`` the m-tile's real filters, and the DRAM
    addresses follow the layout of :func:`dram_layout`."""
    planner = PassPlanner(mapping, in_base=in_base, filt_base=filt_base, out_base=out_base,
                          in_rlc=in_rlc, out_rlc=out_rlc)
    return planner.descriptor(n, group, mtile, chunk, ctile)


def pass_plan(mapping, *, in_base: int = 0, filt_base: int = 0, out_base: int = 0,
              in_rlc: RLCLayout | None = None,
              out_rlc: RLCLayout | None = None) -> list[tuple[PassKey, PassDescriptor]]:
    """Every pass of the mapping with its descriptor, in execution order:
    for n: for group: for m-tile: for e-chunk: for c-tile (accumulate = c-tile > 0, last =
    the final c-tile). ``in_rlc`` / ``out_rlc``: the input / output travels compressed in
    that layout (gen/compress.py)."""
    planner = PassPlanner(mapping, in_base=in_base, filt_base=filt_base, out_base=out_base,
                          in_rlc=in_rlc, out_rlc=out_rlc)
    layer = mapping.layer
    plan = []
    for n in range(layer.N):
        for group in range(layer.groups):
            for mt in range(planner.m_tiles):
                for ch in planner.chunks:
                    for ct in range(planner.c_tiles):
                        plan.append((PassKey(n, group, mt, ch.index, ct),
                                     planner.descriptor(n, group, mt, ch, ct)))
    # The first pass of a layer waits for everything before it (the previous layer's output
    # must be in DRAM before this layer's loads start).
    key, first = plan[0]
    plan[0] = (key, dataclasses.replace(first, sync=True))
    return plan


# ---- programs -----------------------------------------------------------------------------

@dataclass
class Program:
    """Descriptors and the initial DRAM image of one mapped layer."""
    descriptors: list[PassDescriptor]
    dram: list[int]
    in_base: int
    filt_base: int
    out_base: int
    out_shape: tuple[int, int, int, int]
    params: AcceleratorParams
    keys: list[PassKey] = field(default_factory=list)
    out_rlc: RLCLayout | None = None      # the output is written compressed in this layout
    in_rlc: RLCLayout | None = None       # the input is read compressed in this layout

    @property
    def out_words(self) -> int:
        if self.out_rlc is not None:
            return self.out_rlc.total_words
        n, m, e, f = self.out_shape
        return n * m * e * _ceil_div(f, self.params.lanes)

    def output(self, dram_words) -> np.ndarray:
        """The layer's output, int64 ``[N, M, E, F]``, from a final DRAM image (decoded
        through its row index when it is compressed)."""
        words = list(dram_words[self.out_base:self.out_base + self.out_words])
        if self.out_rlc is None:
            return unpack_activations(words, self.out_shape, self.params)
        return decode_tensor(words, self.out_rlc, self.params)

    def compressed_words(self, dram_words) -> int:
        """Data words the compressed output occupies (0 when it is not compressed)."""
        lay = self.out_rlc
        if lay is None:
            return 0
        words = list(dram_words[self.out_base:self.out_base + self.out_words])
        total = 0
        for n in range(lay.N):
            for c in range(lay.C):
                w, lane = lay.entry(lay.H - 1)
                total += _entry(words[lay.index(n, c) + w], lane)
        return total


def decode_tensor(words, lay: RLCLayout, params: AcceleratorParams) -> np.ndarray:
    """``[N, C, H, W]`` from a compressed region (``words`` from its base)."""
    out = np.zeros((lay.N, lay.C, lay.H, lay.W), dtype=np.int64)
    for n in range(lay.N):
        for c in range(lay.C):
            pos = lay.plane(n, c)
            for h in range(lay.H):
                w, lane = lay.entry(h)
                end = lay.plane(n, c) + _entry(words[lay.index(n, c) + w], lane)
                out[n, c, h], used = decode_row(words[pos:end], lay.W, params)
                if pos + used != end:
                    raise ValueError(f"row {h} of plane ({n}, {c}): index says {end - pos} "
                                     f"words, the stream has {used}")
                pos = end
    return out


def encode_tensor(x: np.ndarray, lay: RLCLayout, params: AcceleratorParams) -> list[int]:
    """The compressed region of ``x [N, C, H, W]`` as the write-back would leave it."""
    words = [0] * lay.total_words
    E = lay.entries
    for n in range(lay.N):
        for c in range(lay.C):
            pos = lay.plane(n, c)
            ends = []
            for h in range(lay.H):
                row = encode_row(x[n, c, h], params)
                words[pos:pos + len(row)] = row
                pos += len(row)
                ends.append(pos - lay.plane(n, c))
            for h, end in enumerate(ends):
                w, lane = lay.entry(h)
                words[lay.index(n, c) + w] |= end << (16 * lane)
    assert len(words) == lay.total_words and E >= 1
    return words


def filter_blocks(mapping, weights: np.ndarray) -> np.ndarray:
    """All filter blocks as ``[blocks * filt_words, L]`` lane values, in DRAM order.

    Block (group, m-tile, c-tile), word ``g*pqs + idx``, lane ``l`` is PE row ``r = g*L + l``
    (channel group ``s = r // R``, filter row ``i = r % R``) and filter word ``idx = (f*S +
    tap)*q + c``: ``weights[m][cw][i][tap]`` with ``m = group*Mg + mtile*p + f`` and ``cw =
    ctile*vgroups*q + s*q + c``, zero where ``f >= p_valid``, ``cw >= C/groups`` or ``r >=
    vgroups*R``. OS blocks (hw/descriptor.py): PE row ``r = g*L + l`` is channel group ``s =
    r`` and word ``idx = ((f*S + tap)*q + c)*R + i`` holds ``weights[m][cw][i][tap]``.
    """
    layer, L = mapping.layer, mapping.params.lanes
    q, p, vg = mapping.q, mapping.p, mapping.vgroups
    R, S, G = layer.R, layer.S, layer.groups
    mt, ct = mapping.m_tiles, mapping.c_tiles
    w = np.zeros((G, mt * p, ct * vg * q, R, S), dtype=np.int64)
    w[:, :layer.Mg, :layer.Cg] = weights.reshape(G, layer.Mg, layer.Cg, R, S)
    w = w.reshape(G, mt, p, ct, vg, q, R, S)
    if mapping.dataflow == "os":
        # PE row s = channel group, word idx = (f*S + tap)*q*R + c*R + i:
        # [G, mt, p, ct, vg, q, R, S] -> [G, mt, ct, vg, p, S, q, R]
        w = w.transpose(0, 1, 3, 4, 2, 7, 5, 6)
        pe_rows, pqs = vg, p * S * q * R
    else:
        # PE row r = s*R + i, word idx = (f*S + tap)*q + c:
        # [G, mt, p, ct, vg, q, R, S] -> [G, mt, ct, vg, R, p, S, q]
        w = w.transpose(0, 1, 3, 4, 6, 2, 7, 5)
        pe_rows, pqs = vg * R, p * S * q
    rows = w.reshape(G, mt, ct, pe_rows, pqs)
    ngroups = _ceil_div(pe_rows, L)
    padded = np.zeros((G, mt, ct, ngroups * L, pqs), dtype=np.int64)
    padded[:, :, :, :pe_rows] = rows
    # rows r = g*L + l -> words g*pqs + idx, lane l
    blocks = padded.reshape(G, mt, ct, ngroups, L, pqs).transpose(0, 1, 2, 3, 5, 4)
    return blocks.reshape(-1, L)


def build_program(mapping, ifmap, weights) -> Program:
    """The descriptors and DRAM image that run ``mapping`` on this ifmap and these weights.

    ``ifmap`` is ``[N, C, H, W]``, ``weights`` ``[M, C/groups, R, S]``, both integers that fit
    ``data_width`` bits. Every descriptor is checked with :meth:`PassDescriptor.check`.
    """
    layer, params = mapping.layer, mapping.params
    dw = params.data_width
    x = _check_values("ifmap", ifmap, dw)
    w = _check_values("weights", weights, dw)
    want_x = (layer.N, layer.C, layer.H, layer.W)
    want_w = (layer.M, layer.Cg, layer.R, layer.S)
    if x.shape != want_x:
        raise ValueError(f"ifmap has shape {x.shape}: allowed {want_x} [N, C, H, W]")
    if w.shape != want_w:
        raise ValueError(f"weights have shape {w.shape}: allowed {want_w} [M, C/groups, R, S]")
    lay = dram_layout(mapping)
    dram = pack_activations(x, params)
    dram += pack_lanes(filter_blocks(mapping, w), params)
    dram += [0] * lay["out_words"]
    assert len(dram) == lay["total"]
    plan = pass_plan(mapping, in_base=lay["in_base"], filt_base=lay["filt_base"],
                     out_base=lay["out_base"])
    for _, d in plan:
        d.check(params)
    return Program(descriptors=[d for _, d in plan], dram=dram, in_base=lay["in_base"],
                   filt_base=lay["filt_base"], out_base=lay["out_base"],
                   out_shape=(layer.N, layer.M, layer.E, layer.F), params=params,
                   keys=[k for k, _ in plan])


# ---- reference executor -------------------------------------------------------------------

#: Counters :func:`execute` observes outside the PEs (the PE-level ones go to ``pe_hook``).
EXEC_COUNTERS = ("passes", "gin_words", "glb_reads", "glb_writes", "psum_buf_reads",
                 "psum_buf_writes", "dram_read_words", "dram_write_words")


def _wrap(a: np.ndarray, width: int) -> np.ndarray:
    unused = np.int64(64 - width)
    return (a << unused) >> unused


def _requantize(acc: np.ndarray, shift: int, dw: int, relu: bool) -> np.ndarray:
    a = acc
    if shift:
        a = (a + (1 << (shift - 1))) >> shift
    a = np.clip(a, -(1 << (dw - 1)), (1 << (dw - 1)) - 1)
    return np.maximum(a, 0) if relu else a


PEHook = Callable[[int, int, int, PassDescriptor, np.ndarray, np.ndarray], None]


def execute(program: Program, params: AcceleratorParams, *, counters: bool = False,
            pe_hook: PEHook | None = None, seed: int = 1):
    """Run the program's descriptors on a copy of its DRAM image; return the final image.

    With ``counters=True`` return ``(image, counts)``, ``counts`` holding the
    :data:`EXEC_COUNTERS` as observed. ``pe_hook(pass_index, r, j, desc, filters[p, q, S],
    ifmap_rows[q, in_width + 2*pad])`` is called for every active PE of every pass with what
    it is programmed with and what the ifmap network delivers to it, so a caller can count
    PE-level accesses independently (in OS, per physical PE (s, j): ``filters[p, q*R, S]``
    and ``ifmap_rows[q*R, ...]``, channel ``c*R + i``). The global buffer and the psum buffers start filled
    with garbage (``seed``): a descriptor that reads something it did not write shows.
    """
    for d in program.descriptors:
        d.check(params)
    L, dw, pw = params.lanes, params.data_width, params.psum_width
    dram = unpack_words(program.dram, params)          # [words, L]
    rng = np.random.default_rng(seed)
    lim = 1 << (dw - 1)
    glb = rng.integers(-lim, lim, size=(params.glb_words, L), dtype=np.int64)
    plim = 1 << (pw - 2)
    psum_buf = rng.integers(-plim, plim, size=(params.cols, params.psum_buf_depth),
                            dtype=np.int64)
    cnt = dict.fromkeys(EXEC_COUNTERS, 0)
    rlc_off = [0] * params.psum_spad_depth      # the write-back's row offset per filter

    def dram_read(addr, length):
        if addr < 0 or addr + length > len(dram):
            raise ValueError(f"DMA read of {length} words at {addr} is outside DRAM "
                             f"({len(dram)} words)")
        cnt["dram_read_words"] += length
        return dram[addr:addr + length]

    for index, d in enumerate(program.descriptors):
        cnt["passes"] += 1
        # 1. DMA in
        glb[d.filt_glb:d.filt_glb + d.filt_words] = dram_read(d.filt_dram, d.filt_words)
        cnt["glb_writes"] += d.filt_words
        if d.in_burst and d.in_rlc:
            _read_rlc_tile(d, params, dram_read, glb, cnt)
        elif d.in_burst:
            for k in range(d.nch_valid):
                dst = k * d.ch_words + d.row_lo * d.row_words
                glb[dst:dst + d.in_burst] = dram_read(d.in_dram + k * d.in_ch_stride,
                                                      d.in_burst)
                cnt["glb_writes"] += d.in_burst
        # 2. filter load: word g*pqs + idx, lane l -> PE row g*L + l
        # (OS: the block again for every further output column; PE row s = channel group)
        ar, pqs = d.active_rows, d.pqs
        ngroups = d.filter_groups(params)
        block = glb[d.filt_glb:d.filt_glb + d.filt_words].reshape(ngroups, pqs, L)
        cnt["glb_reads"] += d.filt_words * (d.out_width if d.is_os else 1)
        pe_filt = block.transpose(0, 2, 1).reshape(ngroups * L, pqs)[:ar]
        q, p, S, R = d.chans, d.filters, d.taps, d.filt_rows
        if d.is_os:
            # word (f*S + tap)*q*R + c*R + i of row s -> the RS view, row s*R + i
            pe_filt = pe_filt.reshape(ar, p, S, q, R).transpose(0, 4, 1, 3, 2)
            ar = ar * R
            pe_filt = pe_filt.reshape(ar, p, q, S)
        else:
            pe_filt = pe_filt.reshape(ar, p, S, q).transpose(0, 1, 3, 2)   # [r, f, c, tap]
        # 3. compute: the ifmap network's values, gin[k, h, w'] with k = s*q + c
        vq = d.vgroups * q
        wp = d.padded_width
        cnt["gin_words"] += wp * q * d.vgroups * d.nrows
        kk = np.arange(vq)[:, None, None]
        hh = np.arange(d.nrows)[None, :, None]
        ww = np.arange(d.in_width)[None, None, :]
        valid = (kk < d.nch_valid) & (hh >= d.row_lo) & (hh < d.row_hi)
        valid = np.broadcast_to(valid, (vq, d.nrows, d.in_width))
        addr = np.where(valid, kk * d.ch_words + hh * d.row_words + ww // L, 0)
        gin = np.zeros((vq, d.nrows, wp), dtype=np.int64)
        gin[:, :, d.pad:d.pad + d.in_width] = np.where(valid, glb[addr, ww % L], 0)
        cnt["glb_reads"] += int(valid.sum())
        # PE (r, j): channel group s = r // R, filter row i = r % R, local row i + j*stride
        F, ncols = d.out_width, d.ncols
        rr = np.arange(ar)
        s_of, h_of = rr // R, (rr % R)[:, None] + np.arange(ncols)[None, :] * d.stride
        win = sliding_window_view(gin, S, axis=2)[:, :, ::d.stride][:, :, :F]  # [k,h,x,tap]
        win = win.reshape(d.vgroups, q, d.nrows, F, S)
        pe_win = win[s_of[:, None], :, h_of]                    # [r, j, c, x, tap]
        if pe_hook is not None and d.is_os:
            # PE (s, j) holds filter rows 0..R-1 as channels c*R + i
            for s in range(d.vgroups):
                filt = pe_filt[s * R:(s + 1) * R].transpose(1, 2, 0, 3).reshape(p, q * R, S)
                for j in range(ncols):
                    rows = gin[s * q:(s + 1) * q, j * d.stride:j * d.stride + R]
                    pe_hook(index, s, j, d, filt.copy(), rows.reshape(q * R, wp).copy())
        elif pe_hook is not None:
            for r in range(ar):
                for j in range(ncols):
                    s = r // R
                    pe_hook(index, r, j, d, pe_filt[r].copy(),
                            gin[s * q:(s + 1) * q, h_of[r, j]].copy())
        lhs = pe_win.transpose(1, 3, 0, 2, 4).reshape(ncols, F, ar * q * S)
        rhs = pe_filt.transpose(0, 2, 3, 1).reshape(ar * q * S, p)
        col = (lhs @ rhs).reshape(ncols, F * p)                  # address x*filters + f
        if d.accumulate:
            col = col + psum_buf[:ncols, :F * p]
            cnt["psum_buf_reads"] += ncols * F * p
        psum_buf[:ncols, :F * p] = _wrap(col, pw)
        cnt["psum_buf_writes"] += ncols * F * p
        if d.is_ws:   # every slot's column sum updates the buffer, not one sum per output
            extra = ncols * F * p * (q * S - 1)
            cnt["psum_buf_reads"] += extra
            cnt["psum_buf_writes"] += extra
        # 4. write-back
        if d.last:
            orw = d.out_row_words
            vals = psum_buf[:ncols, :F * p].reshape(ncols, F, p)[:, :, :d.p_valid]
            cnt["psum_buf_reads"] += ncols * F * d.p_valid
            out = np.zeros((d.p_valid, ncols, orw * L), dtype=np.int64)
            out[:, :, :F] = _requantize(vals, d.shift, dw, d.relu).transpose(2, 0, 1)
            if d.out_rlc:
                _write_rlc_rows(d, params, out[:, :, :F], dram, rlc_off, cnt)
                continue
            for f in range(d.p_valid):
                for j in range(ncols):
                    a = d.out_dram + f * d.out_ch_stride + j * orw
                    if a < 0 or a + orw > len(dram):
                        raise ValueError(f"DMA write of {orw} words at {a} is outside DRAM "
                                         f"({len(dram)} words)")
                    dram[a:a + orw] = out[f, j].reshape(orw, L)
                    cnt["dram_write_words"] += orw
    image = pack_lanes(dram, params)
    return (image, cnt) if counters else image


def _entry(word: int, lane: int) -> int:
    return (word >> (16 * lane)) & 0xFFFF


def _read_rlc_tile(d: PassDescriptor, params, dram_read, glb, cnt) -> None:
    """Phase 1 for a compressed tile: per channel, the index burst, then the rows' words."""
    L = params.lanes
    rows = d.row_hi - d.row_lo
    for k in range(d.nch_valid):
        idx = pack_lanes(dram_read(d.in_idx + k * d.in_idx_stride, d.in_idx_len), params)
        start = 0 if d.in_a_zero else _entry(idx[0], d.in_lane_a)
        end = _entry(idx[-1], d.in_lane_b)
        if end <= start or end > d.in_ch_stride:
            raise ValueError(f"RLC index of channel {k}: rows from word {start} to {end}: "
                             f"allowed start < end <= {d.in_ch_stride} (the plane's words)")
        words = pack_lanes(dram_read(d.in_dram + k * d.in_ch_stride + start, end - start),
                           params)
        pos = 0
        dst = k * d.ch_words + d.row_lo * d.row_words
        for r in range(rows):
            values, used = decode_row(words[pos:], d.in_width, params)
            pos += used
            row = np.zeros(d.row_words * L, dtype=np.int64)
            row[:d.in_width] = values
            glb[dst + r * d.row_words:dst + (r + 1) * d.row_words] = row.reshape(-1, L)
        if pos != len(words):
            raise ValueError(f"RLC data of channel {k}: {len(words) - pos} words left over")
        cnt["glb_writes"] += rows * d.row_words


def _write_rlc_rows(d: PassDescriptor, params, out: np.ndarray, dram, rlc_off, cnt) -> None:
    """Phase 4 compressed: per filter, each row's words after the filter's previous rows,
    then the rows' ends as one index burst (``out``: [p_valid, ncols, out_width])."""
    E = params.dram_width // 16
    for f in range(d.p_valid):
        if d.out_first:
            rlc_off[f] = 0
        ends = []
        for j in range(d.ncols):
            words = encode_row(out[f, j], params)
            a = d.out_dram + f * d.out_ch_stride + rlc_off[f]
            if a < 0 or a + len(words) > len(dram):
                raise ValueError(f"DMA write of {len(words)} words at {a} is outside DRAM")
            dram[a:a + len(words)] = unpack_words(words, params)
            rlc_off[f] += len(words)
            ends.append(rlc_off[f])
            cnt["dram_write_words"] += len(words)
        nidx = -(-d.ncols // E)
        ends += [0] * (nidx * E - len(ends))
        idx = [sum(ends[i * E + e] << (16 * e) for e in range(E)) for i in range(nidx)]
        a = d.out_idx + f * d.out_idx_stride
        dram[a:a + nidx] = unpack_words(idx, params)
        cnt["dram_write_words"] += nidx


# ---- networks ------------------------------------------------------------------------------

@dataclass
class NetworkProgram:
    """Consecutive layers in one DRAM image: layer k reads layer k-1's output region as it
    stands (the activation layout is the same on both sides), and its first pass is a
    ``sync`` pass, so it waits until the previous layer's last write-back is done."""
    programs: list[Program]
    descriptors: list[PassDescriptor]
    dram: list[int]


def check_chain(layers) -> None:
    """Raise ValueError unless each layer's (N, C, H, W) is the previous one's (N, M, E, F)."""
    for la, lb in zip(layers, layers[1:]):
        if (lb.N, lb.C, lb.H, lb.W) != (la.N, la.M, la.E, la.F):
            raise ValueError(f"{lb.name} takes (N, C, H, W) = {(lb.N, lb.C, lb.H, lb.W)} but "
                             f"{la.name} produces {(la.N, la.M, la.E, la.F)}: layers must chain")


def build_network(mappings, ifmap, weights_list, *, rlc: bool = False) -> NetworkProgram:
    """One image and descriptor list for ``mappings`` (consecutive layers) on ``ifmap``.

    The layers must chain: layer k+1's (N, C, H, W) is layer k's (N, M, E, F). With ``rlc``
    every layer's output is written run-length coded (gen/compress.py) and every layer but
    the first reads its input that way; the first layer's input and all weights are plain,
    as in Eyeriss."""
    if not mappings or len(mappings) != len(weights_list):
        raise ValueError("build_network needs one weight tensor per mapping, at least one")
    check_chain([m.layer for m in mappings])
    params = mappings[0].params
    dram = pack_activations(_check_values("ifmap", ifmap, params.data_width), params)
    first = mappings[0].layer
    if np.asarray(ifmap).shape != (first.N, first.C, first.H, first.W):
        raise ValueError(f"ifmap has shape {np.asarray(ifmap).shape}: allowed "
                         f"{(first.N, first.C, first.H, first.W)} [N, C, H, W]")
    in_base = 0
    filt_bases = []
    for mapping, w in zip(mappings, weights_list):
        w = _check_values("weights", w, params.data_width)
        filt_bases.append(len(dram))
        dram += pack_lanes(filter_blocks(mapping, w), params)
    programs, descriptors = [], []
    in_rlc = None
    for mapping, filt_base in zip(mappings, filt_bases):
        layer = mapping.layer
        out_base = len(dram)
        out_rlc = rlc_layout(params, N=layer.N, C=layer.M, H=layer.E, W=layer.F,
                             ncw=mapping.ncols) if rlc else None
        out_words = out_rlc.total_words if rlc else \
            layer.N * layer.M * layer.E * _ceil_div(layer.F, params.lanes)
        dram += [0] * out_words
        plan = pass_plan(mapping, in_base=in_base, filt_base=filt_base, out_base=out_base,
                         in_rlc=in_rlc, out_rlc=out_rlc)
        for _, d in plan:
            d.check(params)
        programs.append(Program(descriptors=[d for _, d in plan], dram=[], in_base=in_base,
                                filt_base=filt_base, out_base=out_base,
                                out_shape=(layer.N, layer.M, layer.E, layer.F),
                                params=params, keys=[k for k, _ in plan], out_rlc=out_rlc,
                                in_rlc=in_rlc))
        descriptors += [d for _, d in plan]
        in_base, in_rlc = out_base, out_rlc
    return NetworkProgram(programs=programs, descriptors=descriptors, dram=dram)
