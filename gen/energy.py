"""The energy model: energy = sum over the levels of accesses x unit cost.

Levels, from cheapest to dearest (Eyeriss, ISCA 2016): ``mac``, ``rf`` (the PE scratchpads),
``inter_pe`` (the array's networks), ``glb`` (the global buffer and the psum buffers carved out
of it) and ``dram``. Every access count comes from the counters of :class:`gen.perf.Perf`,
which equal the RTL's; the one movement the RTL does not count, psums handed from a PE to the
PE above it, is derived from the mapping (:func:`psum_forward_words`).

What each level charges (one *component* per kind of storage or wire):

========== =========== ====================================================== ===========
level      component   accesses (Perf counters)                                bits each
========== =========== ====================================================== ===========
mac        mac         ``macs``                                                (per MAC)
rf         ifmap_spad  ``ifmap_spad_reads + ifmap_spad_writes``                data_width
rf         filter_spad ``filter_spad_reads + filter_spad_writes``              data_width
rf         psum_spad   ``psum_spad_reads + psum_spad_writes``                  psum_width
inter_pe   ifmap_net   ``ifmap_spad_writes``: words the ifmap network delivers  data_width
                       (a multicast counts once per receiving PE)
inter_pe   filter_net  ``filter_spad_writes``: weights the filter network       data_width
                       delivers (once per receiving PE)
inter_pe   psum_fwd    psums passed up a column from PE to PE (derived)         psum_width
glb        glb         ``glb_reads + glb_writes``                               dram_width
glb        psum_buf    ``psum_buf_reads + psum_buf_writes``                     psum_width
dram       dram        ``dram_read_words + dram_write_words``                   dram_width
========== =========== ====================================================== ===========

Zero-gating costs nothing by construction: ``macs`` excludes gated MACs, ``filter_spad_reads``
excludes the reads a zero ifmap value skips, the psum scratchpad counters exclude the gated
read-modify-writes, and ``glb_reads`` excludes padding (generated as zeros, never read). The
ifmap scratchpad is still read for a zero (that is how the PE sees it is zero) and padding
zeros still travel the ifmap network, as in the RTL.

A unit cost is for one access of one *data word* of the table's ``word_bits`` (None: the
design's ``data_width``); an access of ``b`` bits costs ``b / word_bits`` times as much. So a
64-bit DRAM or global-buffer word of a 16-bit design is four data words, and a 48-bit psum three.
Note that the RTL's ifmap generator reads a whole global-buffer word for each ifmap value it
sends, and is charged for it.

Tables: ``eyeriss`` (normalized to a MAC: 1, 1, 2, 6, 200), ``horowitz`` (45 nm pJ; RF and
SRAM costs chosen by size, see :func:`horowitz_costs`) and user TOML tables
(:func:`load_table`).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from hw.params import AcceleratorParams

__all__ = ["LEVELS", "COMPONENTS", "UNCHARGED", "EnergyTable", "TABLES", "EYERISS", "HOROWITZ",
           "load_table", "component_accesses", "component_bits", "level_words",
           "psum_forward_words", "energy", "horowitz_costs", "rf_pj", "sram_pj"]

#: The levels, in report order (cheapest first).
LEVELS = ("mac", "rf", "inter_pe", "glb", "dram")


@dataclass(frozen=True)
class Component:
    name: str
    level: str
    #: Perf counters whose sum is the component's accesses (empty: derived).
    counters: tuple[str, ...]
    #: Which width one access moves: "op" (a MAC), "data", "psum" or "dram".
    width: str


#: Every component, in report order.
COMPONENTS: tuple[Component, ...] = (
    Component("mac", "mac", ("macs",), "op"),
    Component("ifmap_spad", "rf", ("ifmap_spad_reads", "ifmap_spad_writes"), "data"),
    Component("filter_spad", "rf", ("filter_spad_reads", "filter_spad_writes"), "data"),
    Component("psum_spad", "rf", ("psum_spad_reads", "psum_spad_writes"), "psum"),
    Component("ifmap_net", "inter_pe", ("ifmap_spad_writes",), "data"),
    Component("filter_net", "inter_pe", ("filter_spad_writes",), "data"),
    Component("psum_fwd", "inter_pe", (), "psum"),
    Component("glb", "glb", ("glb_reads", "glb_writes"), "dram"),
    Component("psum_buf", "glb", ("psum_buf_reads", "psum_buf_writes"), "psum"),
    Component("dram", "dram", ("dram_read_words", "dram_write_words"), "dram"),
)
_BY_NAME = {c.name: c for c in COMPONENTS}

#: The model's counters that are not charged, and why. Every other counter must feed a
#: component (tests/test_energy.py checks it, so a new counter cannot be left out silently).
UNCHARGED = {
    "cycles": "time", "dma_in_cycles": "time", "fload_cycles": "time",
    "compute_cycles": "time", "writeback_cycles": "time", "dram_rd_stall": "time",
    "dram_wr_stall": "time", "overlap_cycles": "time", "dma_stall_cycles": "time",
    "passes": "a count of passes",
    "gated_macs": "zero-gated: no MAC is done",
    "gin_words": "ifmap-network cycles; the words delivered to PEs are charged instead",
}


# ---- access counts ----------------------------------------------------------------------------

def _rs_psum_forward(mapping, perf) -> int:
    """Row-stationary: in every pass each active column is one chain of ``vgroups * R`` PEs;
    every PE but the top one hands its ``p * F`` psums to the PE above, and the top one
    writes them into the column's psum buffer -- which ``psum_buf_writes`` counts
    (``ncols * p * F`` per pass). So the words forwarded are ``(vgroups*R - 1)`` times the
    psum-buffer writes. (The bottom PE's psums *from* the psum buffer are psum-buffer reads,
    charged to the global-buffer level.)"""
    return (mapping.vgroups * mapping.layer.R - 1) * perf.psum_buf_writes


def _ws_psum_forward(mapping, perf) -> int:
    """Weight-stationary: every MAC slot, the ``vgroups * R`` PEs of an active column hand
    their products to the column's adder, whose sum updates the psum buffer -- one
    ``psum_buf_writes`` per sum. As for RS, ``(vgroups*R - 1)`` words move between PEs per
    psum-buffer write (the adder is the chain, flattened)."""
    return (mapping.vgroups * mapping.layer.R - 1) * perf.psum_buf_writes


def _os_psum_forward(mapping, perf) -> int:
    """Output-stationary: a PE holds all R filter rows, so a column chains only its
    ``vgroups`` channel groups: ``(vgroups - 1)`` words per psum-buffer write."""
    return (mapping.vgroups - 1) * perf.psum_buf_writes


#: Per dataflow: how many psums travel between PEs (the RTL has no counter for it). A
#: dataflow the mapper offers without a rule here cannot be costed (a clear error, not a
#: silent zero): add its rule when the dataflow lands.
PSUM_FORWARD: dict[str, Callable] = {"rs": _rs_psum_forward, "ws": _ws_psum_forward,
                                     "os": _os_psum_forward}


def psum_forward_words(mapping, perf) -> int:
    """Psums passed from a PE to another PE for ``mapping``, whose counters are ``perf``."""
    rule = PSUM_FORWARD.get(mapping.dataflow)
    if rule is None:
        raise ValueError(f"dataflow {mapping.dataflow!r} has no psum-forwarding rule in "
                         f"gen/energy.py (PSUM_FORWARD has {', '.join(PSUM_FORWARD)}): its "
                         f"inter-PE energy cannot be modeled")
    return int(rule(mapping, perf))


def component_accesses(mapping, perf) -> dict[str, int]:
    """Accesses of every component (see the module's table) of ``mapping`` from its
    :class:`gen.perf.Perf` counters."""
    out = {}
    for c in COMPONENTS:
        if c.counters:
            out[c.name] = int(sum(getattr(perf, n) for n in c.counters))
        else:
            out[c.name] = psum_forward_words(mapping, perf)
    return out


def component_bits(params: AcceleratorParams) -> dict[str, int | None]:
    """Bits one access of each component moves (None for a MAC, which is costed per op)."""
    widths = {"op": None, "data": params.data_width, "psum": params.psum_width,
              "dram": params.dram_width}
    return {c.name: widths[c.width] for c in COMPONENTS}


def level_words(accesses: dict[str, int], params: AcceleratorParams) -> dict[str, float]:
    """Per level: accesses in data words (``data_width`` bits; MACs as themselves)."""
    bits = component_bits(params)
    out = dict.fromkeys(LEVELS, 0.0)
    for c in COMPONENTS:
        b = bits[c.name]
        out[c.level] += accesses[c.name] * (1.0 if b is None else b / params.data_width)
    return out


# ---- tables -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class EnergyTable:
    """Unit costs per level (and optionally per component) of one data word's access.

    ``levels`` gives every level's cost; ``components`` overrides single components;
    ``sizer`` (built-in tables only) computes component costs from the design's sizes.
    ``word_bits`` is the width the costs are quoted for (None: the design's data width).
    """
    name: str
    unit: str
    levels: dict[str, float]
    components: dict[str, float] = field(default_factory=dict)
    word_bits: int | None = None
    sizer: Callable[[AcceleratorParams], dict[str, float]] | None = None
    note: str = ""

    def unit_costs(self, params: AcceleratorParams) -> dict[str, float]:
        """Cost of one data-word access of every component on ``params``."""
        costs = {c.name: float(self.levels[c.level]) for c in COMPONENTS}
        if self.sizer is not None:
            costs.update(self.sizer(params))
        costs.update(self.components)
        return costs

    def describe(self, params: AcceleratorParams) -> dict:
        return {"unit": self.unit, "word_bits": self.word_bits or params.data_width,
                "unit_costs": self.unit_costs(params), "note": self.note}


def _log_interp(x: float, x0: float, y0: float, x1: float, y1: float) -> float:
    """y at x, linear in log2(x) between (x0, y0) and (x1, y1), clamped to [y0, y1] outside."""
    if x <= x0:
        return y0
    if x >= x1:
        return y1
    return y0 + (y1 - y0) * math.log2(x / x0) / math.log2(x1 / x0)


def rf_pj(depth: int) -> float:
    """Horowitz register file, pJ per 16-bit access: 0.12 up to 16 words, 0.23 from 64 words,
    linear in log2(depth) between (no figure beyond 64 words: larger ones cost 0.23)."""
    return _log_interp(depth, 16, 0.12, 64, 0.23)


def sram_pj(words: int) -> float:
    """Horowitz SRAM, pJ per 16-bit access: 8 up to 4K words, 11 from 32K words, linear in
    log2(size) between (no figures outside: smaller ones cost 8, larger ones 11)."""
    return _log_interp(words, 4096, 8.0, 32768, 11.0)


def horowitz_costs(params: AcceleratorParams) -> dict[str, float]:
    """Horowitz's figures sized for ``params``: each scratchpad by its own depth, the global
    buffer (and the psum buffers carved out of it) by the whole buffer's size in 16-bit
    words."""
    sram = sram_pj(params.glb_bytes * 8 // 16)
    return {"ifmap_spad": rf_pj(params.ifmap_spad_depth),
            "filter_spad": rf_pj(params.filter_spad_depth),
            "psum_spad": rf_pj(params.psum_spad_depth),
            "glb": sram, "psum_buf": sram}


EYERISS = EnergyTable(
    name="eyeriss", unit="MAC",
    levels={"mac": 1.0, "rf": 1.0, "inter_pe": 2.0, "glb": 6.0, "dram": 200.0},
    note="Eyeriss (ISCA 2016) normalized costs, per data word, relative to one MAC")

HOROWITZ = EnergyTable(
    name="horowitz", unit="pJ",
    # MAC = 16-bit add 0.18 + multiply 0.62. Horowitz has no inter-PE figure: Eyeriss's
    # inter-PE : RF ratio (2x) applied to the 16-word RF (0.12). rf and glb are placeholders
    # that horowitz_costs replaces with sized figures.
    levels={"mac": 0.80, "rf": 0.12, "inter_pe": 0.24, "glb": 8.0, "dram": 640.0},
    word_bits=16, sizer=horowitz_costs,
    note="Horowitz (ISSCC 2014) 45 nm, pJ per 16-bit access; RF by scratchpad depth (16: "
         "0.12, 64: 0.23), SRAM by global-buffer size (4K words: 8, 32K: 11), log-interpolated "
         "and clamped; inter-PE 0.24 = 2 x the 16-word RF (not in Horowitz's table)")

#: The built-in tables.
TABLES: dict[str, EnergyTable] = {"eyeriss": EYERISS, "horowitz": HOROWITZ}

_TOML_META = ("name", "unit", "word_bits")


def load_table(path: str | Path) -> EnergyTable:
    """A user table from TOML: one cost per level (all of ``LEVELS`` required), optional
    per-component overrides (``psum_spad = 0.3``), and optional ``name`` (default ``user``),
    ``unit`` (default ``units``) and ``word_bits`` (default: the design's data width). Keys may
    sit at the top level or in an ``[energy]`` table."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ValueError(f"cannot read energy table {str(path)!r}: {e.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: invalid TOML: {e}") from None
    if set(data) == {"energy"} and isinstance(data["energy"], dict):
        data = data["energy"]
    allowed = (f"{', '.join(LEVELS)} (levels), {', '.join(_BY_NAME)} (components), "
               f"{', '.join(_TOML_META)}")
    costs = {}
    for key, value in data.items():
        if key not in LEVELS and key not in _BY_NAME and key not in _TOML_META:
            raise ValueError(f"{path}: unknown key {key!r}: allowed {allowed}")
        if key in _TOML_META:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value < 0:
            raise ValueError(f"{path}: {key} = {value!r} is out of range: allowed a number "
                             f">= 0 (cost of one data-word access)")
        costs[key] = float(value)
    missing = [lv for lv in LEVELS if lv not in costs]
    if missing:
        raise ValueError(f"{path}: missing level {missing[0]!r}: required "
                         f"{', '.join(LEVELS)}")
    name = data.get("name", "user")
    if not isinstance(name, str) or not name.isidentifier() or name in TABLES:
        raise ValueError(f"{path}: name = {name!r} is invalid: allowed an identifier other "
                         f"than {', '.join(TABLES)}")
    unit = data.get("unit", "units")
    if not isinstance(unit, str) or not unit:
        raise ValueError(f"{path}: unit = {unit!r} is invalid: allowed a non-empty string")
    bits = data.get("word_bits")
    if bits is not None and (isinstance(bits, bool) or not isinstance(bits, int)
                             or not 1 <= bits <= 512):
        raise ValueError(f"{path}: word_bits = {bits!r} is out of range: allowed 1..512")
    return EnergyTable(name=name, unit=unit,
                       levels={lv: costs[lv] for lv in LEVELS},
                       components={c: v for c, v in costs.items() if c not in LEVELS},
                       word_bits=bits, note=f"user table {path}")


# ---- energy -----------------------------------------------------------------------------------

def energy(accesses: dict[str, int], table: EnergyTable,
           params: AcceleratorParams) -> dict:
    """Energy of ``accesses`` (per component) with ``table``: ``{"total", "levels"}`` in the
    table's unit, every level present."""
    costs = table.unit_costs(params)
    bits = component_bits(params)
    ref = table.word_bits or params.data_width
    levels = dict.fromkeys(LEVELS, 0.0)
    for c in COMPONENTS:
        b = bits[c.name]
        levels[c.level] += accesses[c.name] * (1.0 if b is None else b / ref) * costs[c.name]
    return {"total": sum(levels.values()), "levels": levels}
