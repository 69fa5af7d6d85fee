"""Estimates without simulation: map each layer, count its accesses, cost them.

:func:`estimate_layer` maps one layer with every dataflow asked for (``auto``: each dataflow
the mapper offers, :data:`gen.mapper.DATAFLOWS`, that the design generates), costs each
mapping with the energy tables (:mod:`gen.energy`) and keeps the best by the objective;
:func:`estimate_network` does it for a list of layers and adds totals. Both are pure functions
of plain values returning the ``rowstat estimate --json`` objects; :func:`format_report` and
:func:`plot_report` render them.

Within one dataflow the mapping is the mapper's (:func:`gen.mapper.map_layer`: fewest cycles);
``auto`` then picks, per layer, the dataflow whose mapping has the lowest energy (ties: fewer
cycles), or the fewest cycles with ``objective="latency"`` (ties: lower energy), ranked by the
``rank_table`` (default: a user table if one is given, else ``eyeriss``). A layer that no
dataflow can map is reported with each dataflow's reason instead of numbers.
"""

from __future__ import annotations

import time
from pathlib import Path

from hw.params import AcceleratorParams

from . import mapper as _mapper
from .energy import LEVELS, TABLES, EnergyTable, component_accesses, energy, level_words
from .perf import PerfConfig
from .perf import estimate as perf_estimate
from .workload import NETWORKS, ConvLayer, parse_layer

__all__ = ["OBJECTIVES", "available_dataflows", "dataflow_choices", "evaluate", "choose",
           "estimate_layer", "estimate_network", "load_network", "format_report",
           "plot_report"]

OBJECTIVES = ("energy", "latency")


def available_dataflows(params: AcceleratorParams) -> tuple[str, ...]:
    """Dataflows ``auto`` chooses from: those the mapper offers and the design generates."""
    return tuple(d for d in _mapper.DATAFLOWS if d in params.dataflows)


def dataflow_choices() -> tuple[str, ...]:
    """Values ``--dataflow`` accepts: the mapper's dataflows, then ``auto``."""
    return (*_mapper.DATAFLOWS, "auto")


def _tables(tables) -> list[EnergyTable]:
    return list(TABLES.values()) if tables is None else list(tables)


def evaluate(params: AcceleratorParams, layer: ConvLayer, dataflow: str, *,
             tables=None, perf: PerfConfig = PerfConfig(),
             zero_fraction: float = 0.0) -> dict:
    """One layer mapped with one dataflow: cycles, accesses per component and per level, and
    energy per table; or ``{"dataflow", "error"}`` when it cannot be mapped or costed."""
    try:
        m = _mapper.map_layer(layer, params, dataflow)
        p = perf_estimate(m, perf=perf, zero_fraction=zero_fraction)
        acc = component_accesses(m, p)
    except ValueError as e:
        msg = str(e)
        prefix = f"{layer.name}: "
        return {"dataflow": dataflow, "error": msg[len(prefix):] if msg.startswith(prefix)
                else msg}
    energies = {}
    for t in _tables(tables):
        e = energy(acc, t, params)
        energies[t.name] = {"unit": t.unit, "total": e["total"],
                            "per_mac": e["total"] / layer.macs, "levels": e["levels"]}
    return {
        "dataflow": dataflow,
        "mapping": m.describe().split(": ", 1)[1],
        "passes": m.passes,
        "cycles": p.cycles,
        "utilization": p.pe_utilization(params),
        "macs": layer.macs,
        "macs_done": p.macs,
        "gated_macs": p.gated_macs,
        "dram_bytes": p.dram_bytes,
        "accesses": acc,
        "words": level_words(acc, params),
        "energy": energies,
    }


def choose(candidates: list[dict], objective: str, rank_table: str) -> dict | None:
    """The best of ``candidates`` (results of :func:`evaluate`) by ``objective``; None if
    none could be mapped. Ties go to the other measure, then to the earlier candidate."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective = {objective!r} is invalid: allowed "
                         f"{', '.join(OBJECTIVES)}")
    ok = [(i, c) for i, c in enumerate(candidates) if "error" not in c]
    if not ok:
        return None

    def key(item):
        i, c = item
        e = c["energy"][rank_table]["total"]
        return (e, c["cycles"], i) if objective == "energy" else (c["cycles"], e, i)

    return min(ok, key=key)[1]


def estimate_layer(params: AcceleratorParams, layer: ConvLayer, *, dataflow: str = "auto",
                   objective: str = "energy", tables=None, rank_table: str | None = None,
                   perf: PerfConfig = PerfConfig(), zero_fraction: float = 0.0) -> dict:
    """The estimate of one layer (see the module docstring): the chosen dataflow's numbers,
    plus ``candidates`` -- every dataflow tried with its cycles and energy, or its error."""
    tabs = _tables(tables)
    rank = _rank_table(tabs, rank_table)
    if objective not in OBJECTIVES:
        raise ValueError(f"objective = {objective!r} is invalid: allowed "
                         f"{', '.join(OBJECTIVES)}")
    if dataflow == "auto":
        flows = available_dataflows(params)
        if not flows:
            raise ValueError(f"no dataflow to choose from: the mapper offers "
                             f"{', '.join(_mapper.DATAFLOWS)}, the design generates "
                             f"{', '.join(params.dataflows)}")
    elif dataflow in _mapper.DATAFLOWS:
        flows = (dataflow,)
    else:
        raise ValueError(f"dataflow = {dataflow!r} is invalid: allowed "
                         f"{', '.join(dataflow_choices())}")
    cands = [evaluate(params, layer, df, tables=tabs, perf=perf, zero_fraction=zero_fraction)
             for df in flows]
    best = choose(cands, objective, rank)
    entry = {"layer": layer.name, "spec": layer.spec(), "requested": dataflow}
    if best is None:
        entry["dataflow"] = None
        entry["error"] = "; ".join(f"{c['dataflow']}: {c['error']}" for c in cands)
    else:
        entry.update(best)
    entry["candidates"] = {
        c["dataflow"]: ({"error": c["error"]} if "error" in c else
                        {"cycles": c["cycles"],
                         "energy": {t: v["total"] for t, v in c["energy"].items()}})
        for c in cands}
    return entry


def _rank_table(tables: list[EnergyTable], rank_table: str | None) -> str:
    names = [t.name for t in tables]
    if rank_table is None:
        user = [n for n in names if n not in TABLES]
        rank_table = user[0] if user else ("eyeriss" if "eyeriss" in names else names[0])
    if rank_table not in names:
        raise ValueError(f"rank table {rank_table!r} is not among the tables: allowed "
                         f"{', '.join(names)}")
    return rank_table


def estimate_network(params: AcceleratorParams, layers, *, name: str = "network",
                     dataflow: str = "auto", objective: str = "energy", tables=None,
                     rank_table: str | None = None, perf: PerfConfig = PerfConfig(),
                     zero_fraction: float = 0.0) -> dict:
    """Every layer's :func:`estimate_layer` and the totals over the layers that mapped."""
    t0 = time.perf_counter()
    tabs = _tables(tables)
    rank = _rank_table(tabs, rank_table)
    rows = [estimate_layer(params, layer, dataflow=dataflow, objective=objective, tables=tabs,
                           rank_table=rank, perf=perf, zero_fraction=zero_fraction)
            for layer in layers]
    ok = [r for r in rows if r["dataflow"] is not None]
    total = {
        "layers": len(ok),
        "cycles": sum(r["cycles"] for r in ok),
        "macs": sum(r["macs"] for r in ok),
        "macs_done": sum(r["macs_done"] for r in ok),
        "gated_macs": sum(r["gated_macs"] for r in ok),
        "dram_bytes": sum(r["dram_bytes"] for r in ok),
        "dataflows": {},
        "accesses": {},
        "words": {lv: sum(r["words"][lv] for r in ok) for lv in LEVELS},
        "energy": {},
    }
    for r in ok:
        total["dataflows"][r["dataflow"]] = total["dataflows"].get(r["dataflow"], 0) + 1
        for k, v in r["accesses"].items():
            total["accesses"][k] = total["accesses"].get(k, 0) + v
    total["utilization"] = (total["macs"] / (total["cycles"] * params.num_pes)
                            if total["cycles"] else 0.0)
    for t in tabs:
        levels = {lv: sum(r["energy"][t.name]["levels"][lv] for r in ok) for lv in LEVELS}
        tot = sum(levels.values())
        total["energy"][t.name] = {"unit": t.unit, "total": tot,
                                   "per_mac": tot / total["macs"] if total["macs"] else 0.0,
                                   "levels": levels}
    return {
        "preset": params.name,
        "array": [params.rows, params.cols],
        "network": name,
        "dataflow": dataflow,
        "objective": objective,
        "rank_table": rank,
        "available_dataflows": list(available_dataflows(params)),
        "zero_fraction": zero_fraction,
        "tables": {t.name: t.describe(params) for t in tabs},
        "layers": rows,
        "unmappable": [{"layer": r["layer"], "error": r["error"]} for r in rows
                       if r["dataflow"] is None],
        "total": total,
        "model_seconds": round(time.perf_counter() - t0, 4),
    }


# ---- networks ---------------------------------------------------------------------------------

def load_network(text: str) -> tuple[str, list[ConvLayer]]:
    """(name, layers) of a built-in network (:data:`gen.workload.NETWORKS`) or of a file.

    A network file has one layer per line, ``[LABEL:] SPEC`` where SPEC is anything
    ``--layer`` takes (``C=3,M=8,H=16,R=3,pad=1`` or ``alexnet.conv3,N=4``); ``#`` starts a
    comment. A layer is named ``FILESTEM.LABEL``, else keeps its built-in name, else
    ``FILESTEM.lineN``.
    """
    if text in NETWORKS:
        return text, list(NETWORKS[text])
    path = Path(text)
    if not path.is_file():
        raise ValueError(f"unknown network {text!r}: allowed {', '.join(NETWORKS)} or a file "
                         f"of layer specs (one per line)")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read network {text!r}: {e}") from None
    layers = []
    for lineno, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        label, colon, spec = line.partition(":")
        if not colon:
            label, spec = "", line
        label = label.strip()
        if colon and (not label or not all(ch.isalnum() or ch in "_-." for ch in label)):
            raise ValueError(f"{path}:{lineno}: label {label!r} is invalid: allowed letters, "
                             f"digits, '_', '-', '.'")
        try:
            layer = parse_layer(spec)
        except ValueError as e:
            raise ValueError(f"{path}:{lineno}: {e}") from None
        if label:
            layer = layer.replace(name=f"{path.stem}.{label}")
        elif layer.name == "custom":
            layer = layer.replace(name=f"{path.stem}.line{lineno}")
        layers.append(layer)
    if not layers:
        raise ValueError(f"{path}: no layers: allowed one layer spec per line")
    return path.stem, layers


# ---- rendering --------------------------------------------------------------------------------

def _si(x: float) -> str:
    """A compact number: 3 significant digits with k/M/G/T."""
    for div, suf in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suf}"
    return f"{x:.3g}"


_LEVEL_TITLE = {"mac": "MAC", "rf": "RF", "inter_pe": "inter-PE", "glb": "GLB", "dram": "DRAM"}


def format_report(report: dict) -> str:
    """The human-readable form of :func:`estimate_network`'s result."""
    tabs = list(report["tables"])
    rows, tot = report["layers"], report["total"]
    width = max([len(r["layer"]) for r in rows] + [5])
    zf = report["zero_fraction"]
    out = [f"{report['network']} on {report['preset']} ({report['array'][0]}x"
           f"{report['array'][1]} PEs): dataflow {report['dataflow']} (objective "
           f"{report['objective']}, ranked by {report['rank_table']}; available "
           f"{', '.join(report['available_dataflows']) or 'none'}), "
           + ("dense ifmaps" if not zf else f"ifmaps {zf:.0%} zeros")]
    head = f"{'layer':{width}} {'flow':>4} {'cycles':>12} {'util':>6} {'MACs':>6}"
    for t in tabs:
        head += f" {t + '/MAC':>14}"
    out.append(head)
    for r in rows:
        if r["dataflow"] is None:
            out.append(f"{r['layer']:{width}} {'-':>4} unmappable: {r['error']}")
            continue
        line = (f"{r['layer']:{width}} {r['dataflow']:>4} {r['cycles']:>12,} "
                f"{r['utilization']:>6.1%} {_si(r['macs']):>6}")
        for t in tabs:
            line += f" {r['energy'][t]['per_mac']:>10.3f} {report['tables'][t]['unit']:<3}"
        out.append(line)
    line = (f"{'total':{width}} {'':>4} {tot['cycles']:>12,} {tot['utilization']:>6.1%} "
            f"{_si(tot['macs']):>6}")
    for t in tabs:
        line += f" {tot['energy'][t]['per_mac']:>10.3f} {report['tables'][t]['unit']:<3}"
    out.append(line)
    for t in tabs:
        unit = report["tables"][t]["unit"]
        out.append("")
        out.append(f"energy by level, {t} table ({unit}; {report['tables'][t]['note']}):")
        out.append(f"{'layer':{width}}" + "".join(f" {_LEVEL_TITLE[lv]:>9}" for lv in LEVELS)
                   + f" {'total':>9}")
        for r in rows:
            if r["dataflow"] is None:
                continue
            e = r["energy"][t]
            out.append(f"{r['layer']:{width}}"
                       + "".join(f" {_si(e['levels'][lv]):>9}" for lv in LEVELS)
                       + f" {_si(e['total']):>9}")
        e = tot["energy"][t]
        out.append(f"{'total':{width}}" + "".join(f" {_si(e['levels'][lv]):>9}"
                                                  for lv in LEVELS) + f" {_si(e['total']):>9}")
        if e["total"]:
            out.append(f"{'share':{width}}" + "".join(
                f" {e['levels'][lv] / e['total']:>9.1%}" for lv in LEVELS))
    if report["unmappable"]:
        out.append("")
        out.append(f"{len(report['unmappable'])} of {len(rows)} layers cannot be mapped on "
                   f"{report['preset']} (left out of the totals)")
    out.append(f"model: {report['model_seconds']:.2f} s")
    return "\n".join(out)


def plot_report(report: dict, path: str | Path) -> None:
    """Stacked bars of every mapped layer's energy by level, one panel per table (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["layers"] if r["dataflow"] is not None]
    if not rows:
        raise ValueError("nothing to plot: no layer could be mapped")
    tabs = list(report["tables"])
    names = [r["layer"].split(".", 1)[-1] + f"\n{r['dataflow']}" for r in rows]
    fig, axes = plt.subplots(len(tabs), 1, figsize=(max(6.0, 0.55 * len(rows) + 2), 3.2 *
                                                    len(tabs)), squeeze=False)
    for ax, t in zip(axes[:, 0], tabs):
        bottom = [0.0] * len(rows)
        for lv in LEVELS:
            vals = [r["energy"][t]["levels"][lv] for r in rows]
            ax.bar(range(len(rows)), vals, bottom=bottom, label=_LEVEL_TITLE[lv])
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.set_ylabel(f"energy ({report['tables'][t]['unit']})")
        ax.set_title(f"{report['network']} on {report['preset']}: {t} table", fontsize=10)
        ax.set_xticks(range(len(rows)), names, fontsize=7,
                      rotation=90 if len(rows) > 12 else 0)
        ax.set_ylim(0, max(bottom) * 1.2)   # room for the legend above the bars
        ax.legend(fontsize=7, ncols=len(LEVELS), loc="upper right")
    fig.tight_layout()
    try:
        fig.savefig(path, format="png", dpi=100)
    except OSError as e:
        raise ValueError(f"cannot write plot {str(path)!r}: {e.strerror}") from None
    finally:
        plt.close(fig)
