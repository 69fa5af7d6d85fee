#!/usr/bin/env python3
"""Random conv layers on the generated RTL: outputs vs golden, counters and cycles vs model.

    python bench/fuzz.py --preset tiny --count 30 --seed 1 [--json]

Each layer draws its shape (R, S, stride, pad, groups, N, ReLU), a simulator and a DRAM stall
probability from the seed. A layer passes when every output word matches the golden model,
every access counter equals the model's, and the timing counters equal the model's (nominal
DRAM) or, under stalls, cycles minus counted stalls equal the model's.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gen.run import TIMING, run_layer  # noqa: E402
from gen.workload import ConvLayer  # noqa: E402
from hw.params import preset  # noqa: E402


def random_layer(rng: random.Random, rows: int) -> ConvLayer:
    while True:
        R, S = rng.randint(1, min(6, rows)), rng.randint(1, 6)
        stride, pad, groups = rng.choice([1, 1, 2, 3, 4]), rng.randint(0, 2), rng.choice([1, 1, 2])
        try:
            return ConvLayer(name="fuzz", N=rng.choice([1, 1, 2]), C=groups * rng.randint(1, 5),
                             M=groups * rng.randint(1, 5), H=rng.randint(1, 14),
                             W=rng.randint(1, 14), R=R, S=S, stride=stride, pad=pad,
                             groups=groups, relu=rng.random() < 0.5)
        except ValueError:
            continue    # empty output: draw again


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--count", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    params = preset(args.preset)
    rng = random.Random(args.seed)
    rows, t0 = [], time.monotonic()
    for i in range(args.count):
        layer = random_layer(rng, params.rows)
        stall = rng.choice([0.0, 0.3])
        sim = rng.choice(["verilator", "verilator", "icarus"])
        try:
            r = run_layer(params, layer, sim=sim, seed=i, stall_prob=stall)
        except ValueError as e:     # a layer the mapper refuses, with its reason
            rows.append({"layer": layer.spec(), "refused": str(e)})
            continue
        rt, mo = r["rtl_counters"], r["model_counters"]
        if stall:
            timing = (rt["cycles"] - rt["dma_stall_cycles"] - rt["dram_wr_stall"]
                      == mo["cycles"] - mo["dma_stall_cycles"] - mo["dram_wr_stall"])
        else:
            timing = all(rt[k] == mo[k] for k in TIMING)
        ok = r["match"] and r["counters_match_model"] and timing
        rows.append({"layer": layer.spec(), "sim": sim, "stall_prob": stall, "ok": ok,
                     "cycles": r["cycles"], "model_cycles": r["model_cycles"]})
        if not args.json:
            print(f"{'ok ' if ok else 'BAD'} {sim:9} stall {stall}  {layer.spec():60} "
                  f"{r['cycles']:>7} cycles (model {r['model_cycles']})", flush=True)
    failed = [r for r in rows if r.get("ok") is False]
    summary = {"preset": params.name, "seed": args.seed, "layers": len(rows),
               "passed": sum(1 for r in rows if r.get("ok")), "failed": len(failed),
               "refused": sum(1 for r in rows if "refused" in r),
               "wall_seconds": round(time.monotonic() - t0, 1), "results": rows}
    print(json.dumps(summary if args.json else {k: v for k, v in summary.items()
                                                 if k != "results"}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
