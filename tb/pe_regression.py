"""The PE regression: random and representative passes on the generated PE Verilog.

Used by ``rowstat pe`` / ``rowstat demo`` and by the pytest entry point, so that what a user
runs and what CI runs are the same cases.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hw.params import AcceleratorParams
from hw.pe import PERowConfig, pe_depths

from .pe_vectors import PECase, case_to_dict, extreme_case, make_case, random_config
from .runner import run_bench

__all__ = ["pe_cases", "run_pe_regression"]


def _representative(params: AcceleratorParams) -> list[PERowConfig]:
    """Foldings a mapper would really use, kept when they fit this PE's scratchpads."""
    wanted = [
        # AlexNet CONV3-5 style: 3 taps, 4 channels, as many filters as fit (Eyeriss: 16-24).
        dict(taps=3, channels=4, filters=16, width=15, rows=2, psum_in=True),
        # AlexNet CONV2 style: 5 taps, 2 channels.
        dict(taps=5, channels=2, filters=8, width=31, rows=1, psum_in=True),
        # AlexNet CONV1 style: 11 taps, 1 channel, stride 4.
        dict(taps=11, channels=1, filters=4, stride=4, width=35, rows=1),
        # 1x1 convolution, stride 2 (ResNet down-sampling).
        dict(taps=1, channels=8, filters=8, stride=2, width=14, rows=2, psum_in=True),
    ]
    depths = pe_depths(params)
    out = []
    for w in wanted:
        fit = dict(w)
        fit["channels"] = min(fit["channels"], params.ifmap_spad_depth // fit["taps"] or 1)
        fit["filters"] = min(fit["filters"], params.psum_spad_depth,
                             params.filter_spad_depth // (fit["channels"] * fit["taps"]) or 1)
        try:
            cfg = PERowConfig(**fit)
            cfg.fields(**depths)
        except ValueError:
            continue
        out.append(cfg)
    return out


def pe_cases(params: AcceleratorParams, *, count: int = 12, seed: int = 0) -> list[PECase]:
    """``count`` random passes plus the representative foldings and one extreme-value pass."""
    rng = np.random.default_rng(seed)
    kw = dict(data_width=params.data_width, psum_width=params.psum_width)
    cases = []
    for n in range(count):
        cfg = random_config(rng, ifmap_depth=params.ifmap_spad_depth,
                            filter_depth=params.filter_spad_depth,
                            psum_depth=params.psum_spad_depth)
        cases.append(make_case(rng, cfg, zero_fraction=[0.0, 0.4, 0.8][n % 3], **kw))
    for cfg in _representative(params):
        cases.append(make_case(rng, cfg, zero_fraction=0.6, **kw))
    q = min(4, params.ifmap_spad_depth // 3) or 1
    taps = min(3, params.ifmap_spad_depth // q)
    extreme = PERowConfig(taps=taps, channels=q, filters=min(2, params.psum_spad_depth),
                          width=taps + 5, rows=2, psum_in=True)
    cases.append(extreme_case(extreme, **kw))
    return cases


def run_pe_regression(params: AcceleratorParams, verilog: Path, *, sim: str, work: Path,
                      count: int = 12, seed: int = 0, stall_prob: float = 0.3,
                      waves: bool = False) -> dict:
    """Run the regression on one simulator; returns a plain summary (the ``--json`` object)."""
    if not 0.0 <= stall_prob < 1.0:
        raise ValueError(f"stall_prob = {stall_prob} is out of range: allowed 0 <= p < 1")
    cases = pe_cases(params, count=count, seed=seed)
    spec = {"params": params.to_dict(), "seed": seed, "stall_prob": stall_prob,
            "cases": [case_to_dict(c) for c in cases]}
    res = run_bench(sim=sim, verilog=[verilog], toplevel="rowstat_pe", module="tb.bench_pe",
                    spec=spec, work=work, waves=waves)
    rows = []
    for case, r in zip(cases, res.cases):
        counters = r["counters"]
        slots = r["mac_slots"]
        rows.append({
            "case": r["case"], "match": r["match"], "words": r["words"],
            "counters_match": counters == r["expected_counters"],
            "cycles": r["cycles"], "mac_slots": slots,
            "macs": counters["macs"], "gated_macs": counters["gated_macs"],
            "mac_utilization": slots / r["cycles"] if r["cycles"] else 0.0,
            "first_mismatch": r["first_mismatch"],
        })
    passed = (res.passed and len(rows) == len(cases)
              and all(r["match"] and r["counters_match"] for r in rows))
    return {
        "sim": sim, "preset": params.name, "passed": passed, "cases": len(cases),
        "cases_run": len(rows), "words_checked": sum(r["words"] for r in rows),
        "macs": sum(r["macs"] for r in rows), "gated_macs": sum(r["gated_macs"] for r in rows),
        "stall_prob": stall_prob, "seed": seed,
        "build_seconds": round(res.build_seconds, 2), "sim_seconds": round(res.sim_seconds, 2),
        "log": str(res.log), "results": rows,
    }
