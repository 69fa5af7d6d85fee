"""The mapper: how a layer runs on an accelerator, chosen by the analytic model.

A :class:`Mapping` fixes a dataflow (``rs``, ``ws`` or ``os``, see hw/descriptor.py) and four
numbers; everything else (the passes, their descriptors, the DRAM image) follows from them and
the layer:

* ``q`` channels and ``p`` filters interleave inside each PE (ifmap, filter and psum
  scratchpads bound them);
* ``vgroups`` channel groups of ``q`` channels stack vertically: PE row ``r`` is channel group
  ``r // R`` and filter row ``r % R``, so ``vgroups * R`` rows are active (OS: a PE holds all
  ``R`` filter rows, row ``r`` is channel group ``r``, ``vgroups`` rows are active);
* ``ncols`` columns each compute one ofmap row: the ofmap is cut into e-chunks of ``ncols``
  rows.

A layer then runs as ``N x groups x m_tiles x e_chunks x c_tiles`` passes (see
:func:`gen.program.pass_plan`). :func:`map_layer` enumerates the legal mappings and keeps the
one with the fewest cycles by :mod:`gen.perf` (ties: fewer DRAM bytes, then fewer passes).

What bounds the numbers per dataflow: RS -- ``q*S`` <= ifmap scratchpad, ``p`` <= psum
scratchpad, ``p*q*S`` <= filter scratchpad, ``vgroups*R`` <= rows. WS -- the same, but no psum
is held in a PE, so ``p`` is bounded by the filter scratchpad (and 255). OS -- the window holds
``q*R*S`` words, ``p*q*R*S`` <= filter scratchpad, ``vgroups`` <= rows. ``dataflow="auto"``
maps the layer with every dataflow the hardware has and keeps the fewest cycles.
"""

from __future__ import annotations

from dataclasses import dataclass

from hw.params import AcceleratorParams
from hw.pe import MAX_ROW_WIDTH

from .perf import cost
from .workload import ConvLayer

__all__ = ["Mapping", "map_layer", "layer_error", "mapping_error", "candidates", "DATAFLOWS"]

#: Dataflows the mapper can map.
DATAFLOWS = ("rs", "ws", "os")


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def psum_bits_needed(layer: ConvLayer, data_width: int) -> int:
    """Smallest psum width that holds the sum of C/groups*R*S largest products."""
    worst = layer.terms * (1 << (2 * (data_width - 1)))
    return worst.bit_length() + 1


def _tile_words(layer: ConvLayer, params: AcceleratorParams, q: int, vgroups: int,
                ncols: int) -> int:
    """Global-buffer words of the ifmap tile of the widest pass."""
    nrows = (ncols - 1) * layer.stride + layer.R
    return vgroups * q * nrows * _ceil_div(layer.W, params.lanes)


def _filter_words(layer: ConvLayer, params: AcceleratorParams, q: int, p: int,
                  vgroups: int, dataflow: str = "rs") -> int:
    if dataflow == "os":
        return _ceil_div(vgroups, params.lanes) * p * q * layer.R * layer.S
    return _ceil_div(vgroups * layer.R, params.lanes) * p * q * layer.S


def _pe_taps(layer: ConvLayer, dataflow: str) -> int:
    """Window words per channel in a PE: S, or R*S in OS (all filter rows in one PE)."""
    return layer.R * layer.S if dataflow == "os" else layer.S


def _p_limit(params: AcceleratorParams, dataflow: str) -> int:
    """Filters a PE can interleave, before the filter scratchpad's share: the psum
    scratchpad holds one psum per filter, except in WS, which holds none."""
    return min(255, params.filter_spad_depth) if dataflow == "ws" else params.psum_spad_depth


def layer_error(layer: ConvLayer, params: AcceleratorParams, dataflow: str = "rs") -> str | None:
    """Why no mapping of ``layer`` can run on ``params`` (None if some might)."""
    p = params
    if dataflow not in DATAFLOWS:
        return (f"dataflow {dataflow!r} is invalid: allowed {', '.join(DATAFLOWS)} "
                f"(or auto)")
    if dataflow not in p.dataflows:
        return (f"dataflow {dataflow!r} is not in the accelerator's dataflows "
                f"{', '.join(p.dataflows)}")
    if dataflow == "os":
        rs = layer.R * layer.S
        if rs > min(p.ifmap_spad_depth, p.filter_spad_depth):
            return (f"R*S = {rs} > {min(p.ifmap_spad_depth, p.filter_spad_depth)}: an OS PE "
                    f"holds a whole filter channel (ifmap_spad_depth = {p.ifmap_spad_depth}, "
                    f"filter_spad_depth = {p.filter_spad_depth})")
    elif layer.R > p.rows:
        return f"R = {layer.R} > rows = {p.rows}: filter height exceeds the PE array"
    if layer.S > p.ifmap_spad_depth:
        return (f"S = {layer.S} > ifmap_spad_depth = {p.ifmap_spad_depth}: filter width "
                f"exceeds the ifmap scratchpad")
    if layer.S > p.filter_spad_depth:
        return (f"S = {layer.S} > filter_spad_depth = {p.filter_spad_depth}: filter width "
                f"exceeds the filter scratchpad")
    if layer.padded_width > MAX_ROW_WIDTH:
        return (f"W + 2*pad = {layer.padded_width} > {MAX_ROW_WIDTH}: the ifmap row is wider "
                f"than a PE accepts")
    need = psum_bits_needed(layer, p.data_width)
    if need > p.psum_width:
        return (f"psum_width = {p.psum_width} too narrow: C/groups*R*S = {layer.terms} "
                f"products of {p.data_width}-bit values need {need} bits")
    if layer.F > p.psum_buf_depth:
        return (f"psum buffer too small: F = {layer.F} > psum_buf_depth = "
                f"{p.psum_buf_depth}")
    shift = layer.shift_for(p.data_width)
    if shift >= p.psum_width:
        return f"shift = {shift} is out of range: allowed 0..{p.psum_width - 1} (psum_width)"
    smallest = _tile_words(layer, p, 1, 1, 1) + _filter_words(layer, p, 1, 1, 1, dataflow)
    if smallest > p.glb_pass_words:
        return (f"global buffer too small: the smallest pass needs {smallest} words, "
                f"glb_pass_words = {p.glb_pass_words} (half the global buffer)")
    return None


def mapping_error(layer: ConvLayer, params: AcceleratorParams, *, q: int, p: int,
                  vgroups: int, ncols: int, dataflow: str = "rs") -> str | None:
    """Why this mapping cannot run (None if it can)."""
    why = layer_error(layer, params, dataflow)
    if why:
        return why
    pr = params
    for name, v in (("q", q), ("p", p), ("vgroups", vgroups), ("ncols", ncols)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            return f"{name} = {v!r} is out of range: allowed an integer >= 1"
    R = layer.R
    T = _pe_taps(layer, dataflow)
    T_name = "R*S" if dataflow == "os" else "S"
    if q * T > pr.ifmap_spad_depth:
        return f"q*{T_name} = {q}*{T} > ifmap_spad_depth = {pr.ifmap_spad_depth}"
    if p > _p_limit(pr, dataflow):
        what = "filter_spad_depth (max 255)" if dataflow == "ws" else "psum_spad_depth"
        return f"p = {p} > {what} = {_p_limit(pr, dataflow)}"
    if p * q * T > pr.filter_spad_depth:
        return (f"p*q*{T_name} = {p}*{q}*{T} > filter_spad_depth = "
                f"{pr.filter_spad_depth}")
    rows_used = vgroups if dataflow == "os" else vgroups * R
    if rows_used > pr.rows:
        return (f"vgroups = {vgroups} > rows = {pr.rows}" if dataflow == "os"
                else f"vgroups*R = {vgroups}*{R} > rows = {pr.rows}")
    if ncols > min(pr.cols, layer.E):
        return f"ncols = {ncols} is out of range: allowed 1..min(cols = {pr.cols}, E = {layer.E})"
    if p * layer.F > pr.psum_buf_depth:
        return f"p*F = {p}*{layer.F} > psum_buf_depth = {pr.psum_buf_depth}"
    need = (_tile_words(layer, pr, q, vgroups, ncols)
            + _filter_words(layer, pr, q, p, vgroups, dataflow))
    if need > pr.glb_pass_words:
        return (f"global buffer too small for this mapping: ifmap tile and filter block need "
                f"{need} words, glb_pass_words = {pr.glb_pass_words}")
    return None


@dataclass(frozen=True, kw_only=True)
class Mapping:
    """A legal mapping of ``layer`` onto ``params`` (checked on construction)."""
    layer: ConvLayer
    params: AcceleratorParams
    dataflow: str = "rs"
    q: int          # channels interleaved per PE
    p: int          # filters interleaved per PE
    vgroups: int    # channel groups stacked on the rows
    ncols: int      # PE columns (ofmap rows) per e-chunk

    def __post_init__(self):
        why = mapping_error(self.layer, self.params, q=self.q, p=self.p, vgroups=self.vgroups,
                            ncols=self.ncols, dataflow=self.dataflow)
        if why:
            raise ValueError(f"{self.layer.name}: {why}")

    @property
    def chans(self) -> int:
        return self.q

    @property
    def filters(self) -> int:
        return self.p

    @property
    def groups(self) -> int:
        return self.layer.groups

    @property
    def e_chunks(self) -> int:
        return _ceil_div(self.layer.E, self.ncols)

    @property
    def m_tiles(self) -> int:
        return _ceil_div(self.layer.Mg, self.p)

    @property
    def c_tiles(self) -> int:
        return _ceil_div(self.layer.Cg, self.vgroups * self.q)

    @property
    def passes(self) -> int:
        return self.layer.N * self.groups * self.m_tiles * self.e_chunks * self.c_tiles

    @property
    def active_pes(self) -> int:
        """Active PEs of the widest pass."""
        rows = self.vgroups if self.dataflow == "os" else self.vgroups * self.layer.R
        return rows * self.ncols

    def describe(self) -> str:
        lay = self.layer
        return (f"{lay.name} on {self.params.name}: {self.dataflow} q={self.q} p={self.p} "
                f"vgroups={self.vgroups} ncols={self.ncols} ({self.active_pes} of "
                f"{self.params.num_pes} PEs); passes = N {lay.N} x groups {self.groups} x "
                f"m-tiles {self.m_tiles} x e-chunks {self.e_chunks} x c-tiles {self.c_tiles} "
                f"= {self.passes}")


def _balanced(total: int, limit: int) -> list[int]:
    """Tile sizes worth trying for ``total`` items in tiles of at most ``limit``: for each
    tile count the smallest size that achieves it (larger sizes only add waste)."""
    sizes = {_ceil_div(total, k) for k in range(1, total + 1)}
    return sorted(s for s in sizes if s <= limit)


def candidates(layer: ConvLayer, params: AcceleratorParams, dataflow: str = "rs"):
    """The legal mappings :func:`map_layer` considers (pruned: balanced tiles only, and for
    each (q, vgroups, ncols) the largest legal p and a few balanced smaller ones)."""
    pr = params
    if layer_error(layer, pr, dataflow):
        return
    R, F = layer.R, layer.F
    T = _pe_taps(layer, dataflow)
    R_rows = 1 if dataflow == "os" else R          # PE rows per channel group
    fixed_p_max = min(_p_limit(pr, dataflow), pr.psum_buf_depth // F, layer.Mg)
    for q in range(1, min(pr.ifmap_spad_depth // T, layer.Cg) + 1):
        p_cap = min(fixed_p_max, pr.filter_spad_depth // (q * T))
        if p_cap < 1:
            continue
        for vgroups in range(1, min(pr.rows // R_rows, _ceil_div(layer.Cg, q)) + 1):
            fgroups = _ceil_div(vgroups * R_rows, pr.lanes)
            for ncols in _balanced(layer.E, pr.cols):
                room = pr.glb_pass_words - _tile_words(layer, pr, q, vgroups, ncols)
                p_max = min(p_cap, room // (fgroups * q * T)) if room > 0 else 0
                if p_max < 1:
                    continue
                k0 = _ceil_div(layer.Mg, p_max)
                ps = {p_max} | {_ceil_div(layer.Mg, k) for k in range(k0, k0 + 3)}
                for p in sorted(ps, reverse=True):
                    yield Mapping(layer=layer, params=pr, dataflow=dataflow, q=q, p=p,
                                  vgroups=vgroups, ncols=ncols)


def map_layer(layer: ConvLayer, params: AcceleratorParams, dataflow: str = "rs") -> Mapping:
    """The legal mapping with the fewest estimated cycles (ties: fewer DRAM bytes, then fewer
    passes). ``dataflow="auto"``: the best of every dataflow the hardware has that can map
    the layer (same key). Raises ValueError naming the constraint when the layer cannot run."""
    if dataflow == "auto":
        best, best_key, errors = None, None, []
        for flow in params.dataflows:
            try:
                m = map_layer(layer, params, flow)
            except ValueError as e:
                errors.append(str(e))
                continue
            c = cost(m)
            key = (c[0], c[1], c[2], DATAFLOWS.index(flow))
            if best_key is None or key < best_key:
                best, best_key = m, key
        if best is None:
            raise ValueError("; ".join(errors))
        return best
    why = layer_error(layer, params, dataflow)
    if why:
        raise ValueError(f"{layer.name}: {why}")
    best, best_key = None, None
    # fewest passes first: a good mapping found early lets cost() abandon the others sooner
    for m in sorted(candidates(layer, params, dataflow), key=lambda m: m.passes):
        c = cost(m, limit=None if best_key is None else best_key[0])
        if c is None:
            continue
        cycles, dram_words, passes = c
        key = (cycles, dram_words, passes, -m.active_pes, m.q, m.p, m.vgroups, m.ncols)
        if best_key is None or key < best_key:
            best, best_key = m, key
    if best is None:  # layer_error passed, so only the global buffer can be the reason
        raise ValueError(f"{layer.name}: global buffer too small: no mapping fits "
                         f"glb_pass_words = {params.glb_pass_words}")
    return best
