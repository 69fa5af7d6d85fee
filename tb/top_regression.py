"""Runs a Program on the generated accelerator Verilog (cocotb, DRAM model) and returns plain
results. Takes plain values only -- packed descriptors, a DRAM image, the expected output
words -- so tb/ needs nothing from gen/ (the command line builds them)."""

from __future__ import annotations

from pathlib import Path

from hw.params import AcceleratorParams

from .runner import run_bench

__all__ = ["run_program_bench"]


def run_program_bench(params: AcceleratorParams, verilog: Path, *, descriptors: list[int],
                      dram: list[int], out_base: int, out_words: int, expected: list[int],
                      sim: str, work: Path, dram_latency: int = 16, stall_prob: float = 0.0,
                      seed: int = 0, cycle_limit: int = 50_000_000, waves: bool = False,
                      progress_path: Path | None = None,
                      checks: list[dict] | None = None, through_errors: bool = False,
                      dram_word_interval: int = 1) -> dict:
    """``checks``: [{base, words, expected}] regions to compare (default: the one output
    region ``out_base``/``out_words``/``expected``). ``through_errors``: keep running after
    the error flag rises (a run-time error must not stop the passes), else stop there."""
    if not 0.0 <= stall_prob < 1.0:
        raise ValueError(f"stall_prob = {stall_prob} is out of range: allowed 0 <= p < 1")
    spec = {
        "params": params.to_dict(), "dram_width": params.dram_width,
        "descriptors": [str(d) for d in descriptors], "dram": dram,
        "out_base": out_base, "out_words": out_words, "expected": expected,
        "dram_latency": dram_latency, "stall_prob": stall_prob, "seed": seed,
        "cycle_limit": cycle_limit,
        "progress_path": str(progress_path) if progress_path else None,
        "checks": checks, "through_errors": through_errors,
        "dram_word_interval": dram_word_interval,
    }
    res = run_bench(sim=sim, verilog=[verilog], toplevel="rowstat_top", module="tb.bench_top",
                    spec=spec, work=work, waves=waves)
    out = res.cases if isinstance(res.cases, dict) else {}
    out.update({"passed": res.passed and bool(out) and out.get("match", False),
                "build_seconds": res.build_seconds, "sim_seconds": res.sim_seconds,
                "log": str(res.log)})
    return out
