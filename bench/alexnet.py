#!/usr/bin/env python3
"""AlexNet CONV1-5 on a rowstat design point: the analytic model for every layer, the RTL
(Verilator or Icarus) for the layers named with --rtl. Prints a table, or JSON with --json.

    python bench/alexnet.py --preset eyeriss --rtl conv5

Activations get AlexNet's measured zero shares after ReLU (CONV1 input 0.01 %, CONV2-5 inputs
38.7 / 72.5 / 79.3 / 77.6 %, Eyeriss JSSC 2017) in the model; RTL runs use random data with
the run command's zero share and check every output word. The Eyeriss chip's measured PE
utilization is printed beside ours.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gen.mapper import map_layer  # noqa: E402
from gen.perf import PerfConfig, estimate  # noqa: E402
from gen.workload import parse_layer  # noqa: E402
from hw.params import load_toml, preset  # noqa: E402

LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")
ZEROS = {"conv1": 0.0001, "conv2": 0.387, "conv3": 0.725, "conv4": 0.793, "conv5": 0.776}
EYERISS_UTIL = {"conv1": 0.76, "conv2": 0.68, "conv3": 0.82, "conv4": 0.83, "conv5": 0.89}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="eyeriss")
    ap.add_argument("--config", metavar="FILE.toml")
    ap.add_argument("--batch", type=int, default=1, help="images per layer (default 1)")
    ap.add_argument("--rtl", default="", metavar="conv5,...",
                    help="layers to also simulate on the RTL (full shape)")
    ap.add_argument("--sim", default="verilator", choices=["verilator", "icarus"])
    ap.add_argument("--dram-latency", type=int, default=16)
    ap.add_argument("--json", action="store_true", help="print one JSON object only")
    args = ap.parse_args(argv)
    params = load_toml(args.config) if args.config else preset(args.preset)
    rtl = [x.strip() for x in args.rtl.split(",") if x.strip()]
    bad = [x for x in rtl if x not in LAYERS]
    if bad or args.batch < 1:
        print(f"bench/alexnet.py: error: --rtl takes {', '.join(LAYERS)}; --batch >= 1",
              file=sys.stderr)
        return 2
    say = (lambda m: print(m, file=sys.stderr, flush=True))
    perf = PerfConfig(dram_latency=args.dram_latency)

    rows, totals = [], {"macs": 0, "cycles": 0, "dram_bytes": 0}
    t_model = time.monotonic()
    for name in LAYERS:
        layer = parse_layer(f"alexnet.{name},N={args.batch}")
        mapping = map_layer(layer, params)
        est = estimate(mapping, perf=perf, zero_fraction=ZEROS[name])
        row = {
            "layer": name, "mapping": mapping.describe().split(": ", 1)[1],
            "passes": mapping.passes, "macs": layer.macs, "model_cycles": est.cycles,
            "model_utilization": est.pe_utilization(params),
            "eyeriss_chip_utilization": EYERISS_UTIL[name],
            "dram_read_bytes": est.dram_read_bytes, "dram_write_bytes": est.dram_write_bytes,
            "ms_at_clock": est.cycles / (params.clock_mhz * 1e3),
            "phases": {k: getattr(est, k) for k in ("dma_in_cycles", "fload_cycles",
                                                     "compute_cycles", "writeback_cycles")},
        }
        rows.append(row)
        totals["macs"] += layer.macs
        totals["cycles"] += est.cycles
        totals["dram_bytes"] += est.dram_read_bytes + est.dram_write_bytes
    model_seconds = time.monotonic() - t_model

    for row in rows:
        if row["layer"] not in rtl:
            continue
        from gen.run import run_layer
        layer = parse_layer(f"alexnet.{row['layer']},N={args.batch}")
        say(f"RTL: alexnet.{row['layer']} on {params.name} ({args.sim}) ...")
        r = run_layer(params, layer, sim=args.sim, dram_latency=args.dram_latency,
                      progress=say)
        row["rtl"] = {k: r[k] for k in ("match", "cycles", "model_cycles", "pe_utilization",
                                        "counters_match_model", "dram_read_bytes",
                                        "dram_write_bytes", "build_seconds", "sim_seconds",
                                        "wall_seconds")}
        row["rtl"]["cycles_vs_model"] = (r["cycles"] / r["model_cycles"] - 1
                                         if r["model_cycles"] else None)

    util = totals["macs"] / (totals["cycles"] * params.num_pes)
    ideal = totals["macs"] / params.num_pes
    result = {"preset": params.name, "batch": args.batch, "clock_mhz": params.clock_mhz,
              "layers": rows, "total_cycles": totals["cycles"], "ideal_cycles": ideal,
              "utilization": util, "dram_mb": totals["dram_bytes"] / 1e6,
              "model_seconds": round(model_seconds, 3)}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0 if all(r.get("rtl", {}).get("match", True) for r in rows) else 1
    print(f"AlexNet CONV1-5 on {params.name} ({params.rows}x{params.cols} PEs, "
          f"{params.clock_mhz} MHz), batch {args.batch}; model in {model_seconds:.2f} s")
    print(f"{'layer':6} {'passes':>6} {'cycles':>11} {'util':>6} {'chip':>5} {'DRAM MB':>8} "
          f"{'ms':>7}  mapping")
    for r in rows:
        print(f"{r['layer']:6} {r['passes']:>6} {r['model_cycles']:>11,} "
              f"{r['model_utilization']:>6.1%} {r['eyeriss_chip_utilization']:>5.0%} "
              f"{(r['dram_read_bytes'] + r['dram_write_bytes']) / 1e6:>8.2f} "
              f"{r['ms_at_clock']:>7.2f}  {r['mapping'].split(';')[0]}")
    print(f"{'all':6} {'':>6} {totals['cycles']:>11,} {util:>6.1%} {'77%':>5} "
          f"{result['dram_mb']:>8.2f}  (ideal {ideal:,.0f} cycles)")
    for r in rows:
        if "rtl" in r:
            x = r["rtl"]
            print(f"RTL {r['layer']}: {'match' if x['match'] else 'MISMATCH'}, "
                  f"{x['cycles']:,} cycles (model {x['model_cycles']:,}, "
                  f"{x['cycles_vs_model']:+.2%}), utilization {x['pe_utilization']:.1%}, "
                  f"counters {'= model' if x['counters_match_model'] else '!= model'}, "
                  f"wall {x['wall_seconds']:.0f} s (build {x['build_seconds']:.0f} s, "
                  f"simulation {x['sim_seconds']:.0f} s)")
    print(json.dumps(result))
    return 0 if all(r.get("rtl", {}).get("match", True) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
