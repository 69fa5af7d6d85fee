"""The mapper: how a layer runs on an accelerator, chosen by the analytic model.

A row-stationary :class:`Mapping` fixes four numbers; everything else (the passes, their
descriptors, the DRAM image) follows from them and the layer:

* ``q`` channels and ``p`` filters interleave inside each PE (ifmap, filter and psum
  scratchpads bound them);
* ``vgroups`` channel groups of ``q`` channels stack vertically: PE row ``r`` is channel group
  ``r // R`` and filter row ``r % R``, so ``vgroups * R`` rows are active;
* ``ncols`` columns each compute one ofmap row: the ofmap is cut into e-chunks of ``ncols``
  rows.

A layer then runs as ``N x groups x m_tiles x e_chunks x c_tiles`` passes (see
:func:`gen.program.pass_plan`). :func:`map_layer` enumerates the legal mappings and keeps the
one with the fewest cycles by :mod:`gen.perf` (ties: fewer DRAM bytes, then fewer passes).
"""

from __future__ import annotations

from dataclasses import dataclass

from hw.params import AcceleratorParams
from hw.pe import MAX_ROW_WIDTH

from .perf import cost
from .workload import ConvLayer

__all__ = ["Mapping", "map_layer", "layer_error", "mapping_error", "candidates", "DATAFLOWS"]

#: Dataflows the mapper can map today.
DATAFLOWS = ("rs",)


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
                  vgroups: int) -> int:
    return _ceil_div(vgroups * layer.R, params.lanes) * p * q * layer.S


def layer_error(layer: ConvLayer, params: AcceleratorParams, dataflow: str = "rs") -> str | None:
    """Why no mapping of ``layer`` can run on ``params`` (None if some might)."""
    p = params
    if dataflow not in DATAFLOWS:
        return (f"dataflow {dataflow!r} is not supported yet: allowed "
                f"{', '.join(DATAFLOWS)}")
    if dataflow not in p.dataflows:
        return (f"dataflow {dataflow!r} is not in the accelerator's dataflows "
                f"{', '.join(p.dataflows)}")
    if layer.R > p.rows:
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
    smallest = _tile_words(layer, p, 1, 1, 1) + _filter_words(layer, p, 1, 1, 1)
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
    S, R = layer.S, layer.R
    if q * S > pr.ifmap_spad_depth:
        return f"q*S = {q}*{S} > ifmap_spad_depth = {pr.ifmap_spad_depth}"
    if p > pr.psum_spad_depth:
        return f"p = {p} > psum_spad_depth = {pr.psum_spad_depth}"
    if p * q * S > pr.filter_spad_depth:
        return f"p*q*S = {p}*{q}*{S} > filter_spad_depth = {pr.filter_spad_depth}"
    if vgroups * R > pr.rows:
        return f"vgroups*R = {vgroups}*{R} > rows = {pr.rows}"
    if ncols > min(pr.cols, layer.E):
        return f"ncols = {ncols} is out of range: allowed 1..min(cols = {pr.cols}, E = {layer.E})"
    if p * layer.F > pr.psum_buf_depth:
        return f"p*F = {p}*{layer.F} > psum_buf_depth = {pr.psum_buf_depth}"
    need = _tile_words(layer, pr, q, vgroups, ncols) + _filter_words(layer, pr, q, p, vgroups)
    if need > pr.glb_pass_words:
        return (f"global buffer too small for this mapping: ifmap tile and filter block need "
                f"{need} words, glb_pass_words = {pr.glb_pass_words}")
    return None


@dataclass(frozen=True, kw_only=True)
class Mapping:
    """A legal row-stationary mapping of ``layer`` onto ``params`` (checked on construction)."""
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
        return self.vgroups * self.layer.R * self.ncols

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
    S, R, F = layer.S, layer.R, layer.F
    fixed_p_max = min(pr.psum_spad_depth, pr.psum_buf_depth // F, layer.Mg)
    for q in range(1, min(pr.ifmap_spad_depth // S, layer.Cg) + 1):
        p_cap = min(fixed_p_max, pr.filter_spad_depth // (q * S))
        if p_cap < 1:
            continue
        for vgroups in range(1, min(pr.rows // R, _ceil_div(layer.Cg, q)) + 1):
            fgroups = _ceil_div(vgroups * R, pr.lanes)
            for ncols in _balanced(layer.E, pr.cols):
                room = pr.glb_pass_words - _tile_words(layer, pr, q, vgroups, ncols)
                p_max = min(p_cap, room // (fgroups * q * S)) if room > 0 else 0
                if p_max < 1:
                    continue
                k0 = _ceil_div(layer.Mg, p_max)
                ps = {p_max} | {_ceil_div(layer.Mg, k) for k in range(k0, k0 + 3)}
                for p in sorted(ps, reverse=True):
                    yield Mapping(layer=layer, params=pr, dataflow=dataflow, q=q, p=p,
                                  vgroups=vgroups, ncols=ncols)


def map_layer(layer: ConvLayer, params: AcceleratorParams, dataflow: str = "rs") -> Mapping:
    """The legal mapping with the fewest estimated cycles (ties: fewer DRAM bytes, then fewer
    passes). Raises ValueError naming the constraint when the layer cannot run."""
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
