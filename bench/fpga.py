"""FPGA benchmark: resources, Fmax and wall time of design points on ECP5-85F and iCE40UP5K.

    python bench/fpga.py [--runs NAME,...] [--timeout S] [--seed N | --seeds N,...] [--json]
                         [-o DIR]

Each run is a design point on a bare device target of ``rowstat synth`` (Yosys + nextpnr from
YoWASP, the on-chip harness around the accelerator, see gen/fpga.py), placed and routed. A run
marked "pack" stops after nextpnr's packing: it shows whether the design fits and what runs
out, without placement (used for the points just above the largest that fits). A design that
does not fit is a row saying what ran out, not an error. ``--timeout`` bounds every tool run.

nextpnr's result moves by several MHz with its placement seed (±5 MHz on the 2x2 between
commits that change little): ``--seeds 1,2,3`` places and routes every run once per seed (a row
each, in DIR/RUN/seed-N) and prints each run's Fmax over the seeds (lowest, median, highest).

Runs (``--runs`` picks some, default all but ``eyeriss``):

  tiny-ecp5, small-ecp5        the presets on ECP5-85F
  a2x2-ecp5, a4x4-ecp5,        2x2, 4x4 and 5x6 PEs, 16-bit (the small preset's other
  a5x6-ecp5                    parameters), at 110 MHz: with small (6x7), how Fmax goes with
                               the array's size
  a2x2-array-ecp5,             the PE array alone (2x2, 4x4, small's 6x7; 16-bit) between
  a4x4-array-ecp5,             registers, at 110 MHz (gen/fpga.py's ``unit="array"``): the
  small-array-ecp5             array's own Fmax, apart from the controller and the DMA
  big-ecp5, over-ecp5          8x8 and 8x9 PEs, 16-bit (small's other parameters), packed:
                               once the largest array found to fit ECP5-85F and one size up
                               (8x8 no longer fits since the registered networks; small does)
  eyeriss-ecp5                 the eyeriss preset (12x14 PEs, 108 KiB) on ECP5-85F, packed
  tiny-up5k                    the tiny preset on iCE40UP5K, packed
  pico-up5k                    the pico preset (2x1 PEs, RS only, no RLC codec, cycles/passes
                               counters) on iCE40UP5K: the largest that fits
  pico3-up5k                   pico with 3x1 PEs on iCE40UP5K, packed: one PE more
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from gen.fpga import TARGETS, FitError, FlowError, _cells, synthesize
from hw.params import dump_toml, preset

_SMALL = preset("small")
_PICO = preset("pico")

#: name -> (parameters, target, stage, clock MHz or None for the constraint file's[, unit])
RUNS = {
    "tiny-ecp5": (preset("tiny"), "ecp5-85f", "route", None),
    "small-ecp5": (_SMALL, "ecp5-85f", "route", None),
    "a2x2-ecp5": (_SMALL.replace(name="a2x2", rows=2, cols=2), "ecp5-85f", "route", 110),
    "a4x4-ecp5": (_SMALL.replace(name="a4x4", rows=4, cols=4), "ecp5-85f", "route", 110),
    "a5x6-ecp5": (_SMALL.replace(name="a5x6", rows=5, cols=6), "ecp5-85f", "route", 110),
    "a2x2-array-ecp5": (_SMALL.replace(name="a2x2", rows=2, cols=2), "ecp5-85f", "route", 110,
                        "array"),
    "a4x4-array-ecp5": (_SMALL.replace(name="a4x4", rows=4, cols=4), "ecp5-85f", "route", 110,
                        "array"),
    "small-array-ecp5": (_SMALL, "ecp5-85f", "route", 110, "array"),
    "big-ecp5": (_SMALL.replace(name="big", rows=8, cols=8), "ecp5-85f", "pack", None),
    "over-ecp5": (_SMALL.replace(name="over", rows=8, cols=9), "ecp5-85f", "pack", None),
    "eyeriss-ecp5": (preset("eyeriss"), "ecp5-85f", "pack", None),
    "tiny-up5k": (preset("tiny"), "up5k", "pack", None),
    "pico-up5k": (_PICO, "up5k", "route", None),
    "pico3-up5k": (_PICO.replace(name="pico3", rows=3), "up5k", "pack", None),
}
DEFAULT = [n for n in RUNS if n != "eyeriss-ecp5"]


def run_one(name: str, out: Path, timeout: float | None, say, seed: int = 1,
            folder: Path | None = None) -> dict:
    params, target, stage, clock, *unit = RUNS[name]
    unit = unit[0] if unit else "accelerator"
    folder = folder or out / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.toml").write_text(dump_toml(params))
    row = {"run": name, "preset": params.name, "array": f"{params.rows}x{params.cols}",
           "data_width": params.data_width, "glb_kib": params.glb_kib, "target": target,
           "stage": stage, "seed": seed, "unit": unit}
    t0 = time.monotonic()
    try:
        r = synthesize(params, target, folder, clock_mhz=clock, stage=stage, seed=seed,
                       timeout=timeout, unit=unit, progress=lambda m: say(f"[{name}] {m}"))
    except FitError as e:
        row.update(fits=False, reason=str(e).split(" (log:")[0])
        stat = folder / "stat.json"
        if stat.exists():       # what Yosys mapped, for the table
            cells = _cells(json.loads(stat.read_text()), TARGETS[target].family)
            row.update({k: cells[k] for k in ("luts", "ffs", "dsps", "brams", "lutram")})
    except FlowError as e:
        row.update(fits=None, reason=str(e))
    else:
        row.update(fits=True, **{k: r[k] for k in (
            "luts", "ffs", "dsps", "brams", "lutram", "spram", "fmax_mhz", "clock_target_mhz",
            "timing_met", "utilization", "critical_path", "late_endpoints", "accelerator")})
    row["wall_s"] = round(time.monotonic() - t0, 1)
    return row


def _fmt(row: dict) -> str:
    name = f"{row['run']:16} {row['array']:>5} {row['data_width']:>3}b"
    if not row["fits"]:
        verdict = "does not fit" if row["fits"] is False else "failed"
        return f"{name}  {verdict}: {row['reason']}  ({row['wall_s']:.0f} s)"
    util = row["utilization"]
    logic = util.get("TRELLIS_COMB") or util.get("ICESTORM_LC") or {}
    share = f"{100 * logic['used'] / logic['available']:.0f}%" if logic else "-"
    if row["fmax_mhz"] is None:
        fmax = "(packed only)"
    else:
        fmax = (f"{row['fmax_mhz']:7.2f} MHz {'met' if row['timing_met'] else 'NOT met'} @ "
                f"{row['clock_target_mhz']:g}")
    return (f"{name} {row['luts']:>6} {row['ffs']:>6} {row['dsps']:>4} {row['brams']:>4} "
            f"{row['lutram']:>6} {share:>5}  {fmax:26} {row['wall_s']:>6.0f}")


def seed_summary(rows: list[dict]) -> dict[str, tuple[float, float, float, int]]:
    """Per run with routed rows: (lowest, median, highest) Fmax over its seeds, and how many
    seeds routed."""
    fmax = {}
    for row in rows:
        if row.get("fits") and row.get("fmax_mhz") is not None:
            fmax.setdefault(row["run"], []).append(row["fmax_mhz"])
    out = {}
    for name, values in fmax.items():
        v = sorted(values)
        mid = len(v) // 2
        median = v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2
        out[name] = (v[0], round(median, 2), v[-1], len(v))
    return out


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        seeds = []
    if not seeds or any(n < 0 for n in seeds) or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(
            f"--seeds = {text!r} is invalid: allowed distinct integers >= 0, comma-separated")
    return seeds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", default=",".join(DEFAULT),
                    help=f"comma-separated runs: {', '.join(RUNS)} (default all but eyeriss)")
    ap.add_argument("--timeout", type=float, default=None, metavar="S",
                    help="give up on a tool run after S seconds")
    seed = ap.add_mutually_exclusive_group()
    seed.add_argument("--seed", type=int, default=1, metavar="N",
                      help="nextpnr's placement seed (default 1; results vary with it)")
    seed.add_argument("--seeds", type=_seeds, default=None, metavar="N,...",
                      help="place and route every run once per seed; print each run's Fmax "
                           "over them (lowest, median, highest)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    ap.add_argument("-o", "--output", default="build/bench-fpga", metavar="DIR")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.runs.split(",") if n.strip()]
    bad = [n for n in names if n not in RUNS]
    if bad:
        print(f"bench/fpga.py: error: unknown run {bad[0]!r}: allowed {', '.join(RUNS)}",
              file=sys.stderr)
        return 2
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    seeds = args.seeds or [args.seed]
    rows = []
    for n in names:
        for sd in seeds:
            folder = Path(args.output) / n / f"seed-{sd}" if args.seeds else None
            rows.append(run_one(n, Path(args.output), args.timeout, say, sd, folder))
            if not args.json:
                say(_fmt(rows[-1]))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'run':16} {'array':>5} {'dw':>4} {'LUT4':>6} {'FF':>6} {'DSP':>4} {'BRAM':>4} "
              f"{'LUTRAM':>6} {'logic':>5}  {'Fmax':26} {'wall s':>6}")
        for row in rows:
            print(_fmt(row) + (f"  seed {row['seed']}" if args.seeds else ""))
        if args.seeds:
            for name, (lo, med, hi, k) in seed_summary(rows).items():
                print(f"{name}: Fmax over {k} of {len(seeds)} seeds {lo:.2f} / {med:.2f} / "
                      f"{hi:.2f} MHz (lowest / median / highest)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
