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

import numpy as np  # noqa: E402

from gen.compress import entropy_bits, rlc_layout, row_words  # noqa: E402
from gen.mapper import map_layer  # noqa: E402
from gen.perf import PerfConfig, estimate  # noqa: E402
from gen.workload import parse_layer  # noqa: E402
from hw.params import load_toml, preset  # noqa: E402

LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")
ZEROS = {"conv1": 0.0001, "conv2": 0.387, "conv3": 0.725, "conv4": 0.793, "conv5": 0.776}
EYERISS_UTIL = {"conv1": 0.76, "conv2": 0.68, "conv3": 0.82, "conv4": 0.83, "conv5": 0.89}


def _rlc_stats(params, layer, zero_fraction, seed: int = 11) -> dict:
    """RLC of a synthetic ifmap with this zero share (nonzero values uniform over the
    data width): data bits against the entropy bound of its (run, level) pairs."""
    rng = np.random.default_rng(seed)
    lim = 1 << (params.data_width - 1)
    shape = (1, layer.C, layer.H, layer.W)
    x = np.where(rng.random(shape) < zero_fraction, 0,
                 rng.integers(1, lim, size=shape) * rng.choice([-1, 1], size=shape))
    words = int(row_words(x, params).sum())
    ent = entropy_bits(x, params)
    return {"zero_fraction": float((x == 0).mean()), "rlc_bits": words * params.rlc_word_bits,
            "entropy_bits": round(ent, 1), "entropy_ratio": words * params.rlc_word_bits / ent}


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

    rows, totals = [], {"macs": 0, "cycles": 0, "dram_bytes": 0, "rlc_dram_bytes": 0,
                        "rlc_cycles": 0, "rlc_stall": 0}
    t_model = time.monotonic()
    for k, name in enumerate(LAYERS):
        layer = parse_layer(f"alexnet.{name},N={args.batch}")
        mapping = map_layer(layer, params)
        est = estimate(mapping, perf=perf, zero_fraction=ZEROS[name])
        # RLC: every feature map but CONV1's input crosses DRAM compressed (Eyeriss). The
        # pooling between layers is not modelled; the input's row index is grouped by this
        # layer's own e-chunks. Output zero share: the next layer's measured input share.
        out_zf = ZEROS[LAYERS[min(k + 1, len(LAYERS) - 1)]]
        in_lay = rlc_layout(params, N=layer.N, C=layer.C, H=layer.H, W=layer.W,
                            ncw=mapping.ncols) if k else None
        out_lay = rlc_layout(params, N=layer.N, C=layer.M, H=layer.E, W=layer.F,
                             ncw=mapping.ncols)
        est_rlc = estimate(mapping, perf=perf, zero_fraction=ZEROS[name], in_rlc=in_lay,
                           out_rlc=out_lay, out_zero_fraction=out_zf)
        rlc_stats = _rlc_stats(params, layer, ZEROS[name]) if k else None
        row = {
            "layer": name, "mapping": mapping.describe().split(": ", 1)[1],
            "passes": mapping.passes, "macs": layer.macs, "model_cycles": est.cycles,
            "model_utilization": est.pe_utilization(params),
            "eyeriss_chip_utilization": EYERISS_UTIL[name],
            "dram_read_bytes": est.dram_read_bytes, "dram_write_bytes": est.dram_write_bytes,
            "ms_at_clock": est.cycles / (params.clock_mhz * 1e3),
            "phases": {k: getattr(est, k) for k in ("dma_in_cycles", "fload_cycles",
                                                     "compute_cycles", "writeback_cycles")},
            "dram_bytes_per_frame": (est.dram_read_bytes + est.dram_write_bytes) / layer.N,
            "rlc": {"dram_bytes_per_frame": (est_rlc.dram_read_bytes
                                             + est_rlc.dram_write_bytes) / layer.N,
                    "dram_read_bytes": est_rlc.dram_read_bytes,
                    "dram_write_bytes": est_rlc.dram_write_bytes,
                    "cycles": est_rlc.cycles,
                    "dma_stall_cycles": est_rlc.dma_stall_cycles,
                    "dma_stall_share": est_rlc.dma_stall_cycles / est_rlc.cycles,
                    "input": rlc_stats},
        }
        rows.append(row)
        totals["macs"] += layer.macs
        totals["cycles"] += est.cycles
        totals["dram_bytes"] += est.dram_read_bytes + est.dram_write_bytes
        totals["rlc_dram_bytes"] += est_rlc.dram_read_bytes + est_rlc.dram_write_bytes
        totals["rlc_cycles"] += est_rlc.cycles
        totals["rlc_stall"] += est_rlc.dma_stall_cycles
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
              "dram_mb_per_frame": totals["dram_bytes"] / args.batch / 1e6,
              "rlc_dram_mb_per_frame": totals["rlc_dram_bytes"] / args.batch / 1e6,
              "rlc_cycles": totals["rlc_cycles"],
              "rlc_dma_stall_share": totals["rlc_stall"] / totals["rlc_cycles"],
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
    print(f"\nDRAM traffic per frame (batch {args.batch}, {params.dram_width}-bit DRAM port at the "
          f"core clock, latency {args.dram_latency}); RLC: feature maps but CONV1's input "
          f"run-length coded, synthetic activations with AlexNet's zero shares")
    print(f"{'layer':6} {'zeros in':>8} {'raw MB':>7} {'RLC MB':>7} {'saved':>6} "
          f"{'RLC/entropy':>11} {'cycles RLC':>11} {'DMA stall':>9}")
    for r in rows:
        x = r["rlc"]
        ent = f"{x['input']['entropy_ratio']:.3f}" if x["input"] else "-"
        print(f"{r['layer']:6} {ZEROS[r['layer']]:>8.1%} {r['dram_bytes_per_frame'] / 1e6:>7.2f} "
              f"{x['dram_bytes_per_frame'] / 1e6:>7.2f} "
              f"{1 - x['dram_bytes_per_frame'] / r['dram_bytes_per_frame']:>6.1%} {ent:>11} "
              f"{x['cycles']:>11,} {x['dma_stall_share']:>9.2%}")
    print(f"{'all':6} {'':>8} {result['dram_mb_per_frame']:>7.2f} "
          f"{result['rlc_dram_mb_per_frame']:>7.2f} "
          f"{1 - result['rlc_dram_mb_per_frame'] / result['dram_mb_per_frame']:>6.1%} {'':>11} "
          f"{totals['rlc_cycles']:>11,} {result['rlc_dma_stall_share']:>9.2%}")
    print("(Eyeriss chip: 15.4 MB for 4 frames = 3.85 MB per frame; RLC 5-10 % above entropy)")
    for r in rows:
        if "rtl" in r:
            x = r["rtl"]
            print(f"RTL {r['layer']}: {'match' if x['match'] else 'MISMATCH'}, "
                  f"{x['cycles']:,} cycles (model {x['model_cycles']:,}, "
                  f"{x['cycles_vs_model']:+.2%}), utilization {x['pe_utilization']:.1%}, "
                  f"counters {'= model' if x['counters_match_model'] else '!= model'}, "
                  f"wall {x['wall_seconds']:.0f} s (build {x['build_seconds']:.0f} s, "
                  f"simulation {x['sim_seconds']:.0f} s)")
    return 0 if all(r.get("rtl", {}).get("match", True) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
