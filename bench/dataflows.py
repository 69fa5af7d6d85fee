#!/usr/bin/env python3
"""Energy per MAC of every dataflow on equal hardware: AlexNet CONV1-5 and FC6-8.

    python bench/dataflows.py [--preset eyeriss] [--batch 1] [--fc-batch 16] [--zeros] [--json]

One design point (the eyeriss preset by default: same PEs, scratchpads and global buffer for
every dataflow), the analytic model (no simulation), the Eyeriss normalized energy table
(MAC 1, RF 1, inter-PE 2, global buffer 6, DRAM 200 per data word). Columns: every dataflow
the mapper offers (gen.mapper.DATAFLOWS) that the design generates, then ``auto`` (per layer
the lowest-energy one). FC6-8 run as 1x1 convolutions (FC6 on the flattened 6x6x256 map:
C = 9216) at --fc-batch images. With more than one dataflow the table also gives each
dataflow's energy relative to rs (Eyeriss, ISCA 2016: the others need 1.4-2.5x more than
RS on AlexNet's CONV layers, >= 1.3x on FC layers at batch 16+). Per-level shares follow, to
explain the ratios. Dense ifmaps by default; --zeros uses AlexNet's measured CONV ifmap zero
shares (JSSC 2017) for zero-gating.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gen.energy import EYERISS, LEVELS  # noqa: E402
from gen.estimate import available_dataflows, choose, evaluate  # noqa: E402
from gen.workload import ConvLayer, parse_layer  # noqa: E402
from hw.params import load_toml, preset  # noqa: E402

CONV = ("conv1", "conv2", "conv3", "conv4", "conv5")
#: AlexNet's classifier as 1x1 convolutions: (name, inputs, outputs, ReLU).
FC = (("fc6", 9216, 4096, True), ("fc7", 4096, 4096, True), ("fc8", 4096, 1000, False))
#: Measured ifmap zero shares of CONV1-5 (Eyeriss, JSSC 2017), used with --zeros.
ZEROS = {"conv1": 0.0001, "conv2": 0.387, "conv3": 0.725, "conv4": 0.793, "conv5": 0.776}


def layers(batch: int, fc_batch: int) -> list[tuple[ConvLayer, float]]:
    out = [(parse_layer(f"alexnet.{name},N={batch}"), ZEROS[name]) for name in CONV]
    for name, c, m, relu in FC:
        out.append((ConvLayer(name=f"alexnet.{name}", N=fc_batch, C=c, M=m, H=1, W=1, R=1,
                              S=1, relu=relu), 0.0))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="eyeriss")
    ap.add_argument("--config", metavar="FILE.toml")
    ap.add_argument("--batch", type=int, default=1, help="CONV images (default 1)")
    ap.add_argument("--fc-batch", type=int, default=16, help="FC images (default 16)")
    ap.add_argument("--zeros", action="store_true",
                    help="AlexNet's measured CONV ifmap zero shares (default: dense)")
    ap.add_argument("--json", action="store_true", help="print one JSON object only")
    args = ap.parse_args(argv)
    try:
        params = load_toml(args.config) if args.config else preset(args.preset)
        if args.batch < 1 or args.fc_batch < 1:
            raise ValueError(f"--batch = {args.batch}, --fc-batch = {args.fc_batch}: allowed "
                             f">= 1")
    except ValueError as e:
        print(f"bench/dataflows.py: error: {e}", file=sys.stderr)
        return 2
    flows = available_dataflows(params)
    t0 = time.perf_counter()
    rows = []
    for layer, zeros in layers(args.batch, args.fc_batch):
        zf = zeros if args.zeros else 0.0
        row = {"layer": layer.name.split(".", 1)[1], "spec": layer.spec(), "macs": layer.macs,
               "zero_fraction": zf, "dataflows": {}}
        # each dataflow once; auto is the same choice `rowstat estimate --dataflow auto`
        # makes (gen.estimate.choose) among these results
        results = [evaluate(params, layer, df, tables=[EYERISS], zero_fraction=zf)
                   for df in flows]
        best = choose(results, "energy", "eyeriss")
        for df, r in (*zip(flows, results), ("auto", best)):
            if r is None or "error" in r:
                row["dataflows"][df] = {"error": r["error"] if r else "no dataflow maps it"}
                continue
            e = r["energy"]["eyeriss"]
            row["dataflows"][df] = {
                "chosen": r["dataflow"], "energy": e["total"], "per_mac": e["per_mac"],
                "levels": e["levels"], "cycles": r["cycles"],
                "utilization": r["utilization"], "mapping": r["mapping"].split(";")[0]}
        rows.append(row)
    groups = {"CONV1-5": [r for r in rows if r["layer"].startswith("conv")],
              "FC6-8": [r for r in rows if r["layer"].startswith("fc")]}
    totals = {}
    for gname, grp in groups.items():
        totals[gname] = {}
        for df in (*flows, "auto"):
            ok = [r for r in grp if "error" not in r["dataflows"][df]]
            if len(ok) < len(grp):
                totals[gname][df] = {"error": "some layers cannot be mapped"}
                continue
            energy = sum(r["dataflows"][df]["energy"] for r in ok)
            macs = sum(r["macs"] for r in ok)
            levels = {lv: sum(r["dataflows"][df]["levels"][lv] for r in ok) for lv in LEVELS}
            totals[gname][df] = {"energy": energy, "per_mac": energy / macs, "levels": levels}
    for grp in (*rows, *totals.values()):
        cells = grp["dataflows"] if "dataflows" in grp else grp
        rs = cells.get("rs", {})
        for df, c in cells.items():
            if "error" not in c and "error" not in rs and "energy" in rs:
                c["vs_rs"] = c["energy"] / rs["energy"]
    result = {"preset": params.name, "array": [params.rows, params.cols],
              "table": "eyeriss", "dataflows": list(flows), "batch": args.batch,
              "fc_batch": args.fc_batch, "zeros": "measured" if args.zeros else "dense",
              "layers": rows, "totals": totals,
              "model_seconds": round(time.perf_counter() - t0, 3)}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(_table(result))
    return 0


def _cell(c: dict) -> str:
    if "error" in c:
        return f"{'n/a':>10}"
    return f"{c['per_mac']:>10.2f}"


def _table(res: dict) -> str:
    flows = res["dataflows"]
    cols = [*flows, "auto"]
    out = [f"Energy per MAC on {res['preset']} ({res['array'][0]}x{res['array'][1]} PEs), "
           f"Eyeriss normalized table (MAC = 1), {res['zeros']} ifmaps; CONV batch "
           f"{res['batch']}, FC batch {res['fc_batch']}; dataflows the mapper offers: "
           f"{', '.join(flows)}; model {res['model_seconds']:.2f} s"]
    head = f"{'layer':8} {'MMACs':>8}" + "".join(f" {c:>10}" for c in cols) + "  auto picks"
    if len(flows) > 1:
        head += "  " + " ".join(f"{df + '/rs':>7}" for df in flows if df != "rs")
    out.append(head)

    def line(name, macs, cells):
        text = f"{name:8} {macs / 1e6:>8.1f}" + "".join(_cell(cells[c]) for c in cols)
        a = cells["auto"]
        text += f"  {a.get('chosen', '-') if 'error' not in a else '-'}"
        if len(flows) > 1:
            text += "  " + " ".join(f"{cells[df]['vs_rs']:>7.2f}" if "vs_rs" in cells[df]
                                    else f"{'n/a':>7}" for df in flows if df != "rs")
        return text

    for r in res["layers"]:
        out.append(line(r["layer"], r["macs"], r["dataflows"]))
    for gname, cells in res["totals"].items():
        macs = sum(r["macs"] for r in res["layers"]
                   if r["layer"].startswith("conv" if gname.startswith("CONV") else "fc"))
        cells = {**cells, "auto": {**cells["auto"], "chosen": "-"}}
        out.append(line(gname, macs, cells))
    out.append("")
    out.append("share of each level in the energy (MAC / RF / inter-PE / GLB / DRAM):")
    for r in res["layers"]:
        for df in flows:
            c = r["dataflows"][df]
            if "error" in c:
                out.append(f"{r['layer']:8} {df:>4}  cannot be mapped: {c['error']}")
                continue
            shares = " ".join(f"{c['levels'][lv] / c['energy']:>6.1%}" for lv in LEVELS)
            out.append(f"{r['layer']:8} {df:>4}  {shares}   {c['mapping']}, "
                       f"{c['utilization']:.0%} utilization")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
