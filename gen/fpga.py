"""The FPGA flow: Yosys and nextpnr (the YoWASP builds from PyPI) on a design point.

``synthesize(params, target, out_dir)`` places and routes the accelerator for one target and
returns its report (a plain dict, the ``rowstat synth --json`` object):

* **board targets** (``ulx3s-85f``, ``icebreaker``) build through the amaranth-boards platform:
  the board's oscillator clocks the design, its LEDs show the harness's ``done``/``error``/
  ``checksum``, the platform writes the pin constraints and packs a bitstream;
* **device targets** (``ecp5-85f``, ``up5k``) run Yosys and nextpnr directly on the bare device
  with the clock constraint of ``constraints/<target>.*`` (its frequency replaced by
  ``clock_mhz`` when given); nextpnr places the harness's I/Os (clock, reset, done, error,
  8-bit checksum) itself.

Either way the synthesized design is :class:`hw.harness.Harness`: the accelerator with a
descriptor ROM (a real mapped layer), a DRAM model in block RAM and a counter scan on chip, so
that every port of the accelerator is driven and observed and nothing is optimized away. The
accelerator is kept as its own module in Yosys (``keep_hierarchy``): constants in the harness
cannot leak into it, and its cells are reported apart from the harness's.

What the report holds: the cells Yosys mapped (LUT4s, flip-flops, DSPs -- ``MULT18X18D`` on
ECP5, ``SB_MAC16`` on iCE40 -- block RAMs ``DP16KD`` / ``SB_RAM40_4K``, single-port RAMs
``SB_SPRAM256KA``, LUT RAM ``TRELLIS_DPR16X4``) for the whole design and for the accelerator
alone; from nextpnr the device utilisation, the maximum frequency of each clock, whether timing
is met and the critical path. A design that does not fit raises :class:`FitError` naming what
ran out.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hw.array import REPLICA_ATTR
from hw.params import AcceleratorParams

__all__ = ["TARGETS", "UNITS", "Target", "Device", "FitError", "FlowError", "synthesize", "yosys_cells",
           "harness", "harness_program", "harness_verilog", "format_report"]

CONSTRAINTS = Path(__file__).resolve().parent.parent / "constraints"

#: Name of the harness's top module and of the accelerator module kept in the hierarchy.
TOP = "rowstat_fpga"
ACCEL = f"{TOP}.accel"


@dataclass(frozen=True)
class Target:
    name: str
    family: str                  # "ecp5" | "ice40"
    board: str | None            # amaranth-boards platform class, or None for a bare device
    nextpnr_device: tuple        # device and package options of nextpnr
    constraint: str | None       # clock constraint file in constraints/ (device targets)
    board_clock_mhz: float | None
    description: str


TARGETS: dict[str, Target] = {
    "ulx3s-85f": Target("ulx3s-85f", "ecp5", "ULX3S_85F_Platform",
                        ("--85k", "--package", "CABGA381"), None, 25.0,
                        "ULX3S board, ECP5 LFE5U-85F (25 MHz oscillator)"),
    "icebreaker": Target("icebreaker", "ice40", "ICEBreakerPlatform",
                         ("--up5k", "--package", "sg48"), None, 12.0,
                         "iCEBreaker board, iCE40UP5K (12 MHz oscillator)"),
    "ecp5-85f": Target("ecp5-85f", "ecp5", None, ("--85k", "--package", "CABGA381"),
                       "ecp5-85f.lpf", None, "bare ECP5 LFE5U-85F, CABGA381"),
    "up5k": Target("up5k", "ice40", None, ("--up5k", "--package", "sg48"),
                   "up5k.pcf", None, "bare iCE40UP5K, SG48"),
}

# Yosys cell types, per family: what counts as a LUT, a flip-flop, a DSP, a block RAM.
_CELLS = {
    "ecp5": dict(lut={"LUT4": 1, "CCU2C": 2}, ff=("TRELLIS_FF",), dsp=("MULT18X18D", "ALU54B"),
                 bram=("DP16KD", "PDPW16KD"), lutram=("TRELLIS_DPR16X4",), spram=()),
    "ice40": dict(lut={"SB_LUT4": 1}, ff=("SB_DFF",), dsp=("SB_MAC16",),
                  bram=("SB_RAM40_4K",), lutram=(), spram=("SB_SPRAM256KA",)),
}
# nextpnr BEL types of the device utilisation, in report order.
_BELS = {
    "ecp5": ("TRELLIS_COMB", "TRELLIS_FF", "TRELLIS_RAMW", "MULT18X18D", "ALU54B", "DP16KD",
             "TRELLIS_IO"),
    "ice40": ("ICESTORM_LC", "ICESTORM_RAM", "ICESTORM_DSP", "ICESTORM_SPRAM", "SB_IO"),
}


class FlowError(RuntimeError):
    """A tool failed (the message names it and its log)."""


class FitError(FlowError):
    """The design does not fit the device (the message says what ran out)."""


# ---- the design: harness and program ------------------------------------------------------

def harness_program(params: AcceleratorParams, *, spec: str | None = None, seed: int = 0):
    """A small real layer for the harness to run: ``(spec, Program)``.

    ``spec``, or the largest of a few shapes that the mapper accepts on ``params`` (filter
    height at most the array's rows); random weights and activations (40 % zeros) from
    ``seed``.
    """
    from gen.mapper import map_layer
    from gen.program import build_program
    from gen.workload import parse_layer
    R = min(3, params.rows)
    specs = [spec] if spec else [f"C={C},M={M},H={H},W={H},R={R},S={R},stride=1,pad={R // 2}"
                                 for C, M, H in ((4, 8, 8), (2, 4, 6), (1, 2, 4))]
    last = None
    for s in specs:
        try:
            layer = parse_layer(s)
            mapping = map_layer(layer, params)
        except ValueError as e:
            last = e
            continue
        rng = np.random.default_rng(seed)
        lim = 1 << (params.data_width - 1)
        x = rng.integers(-lim, lim, size=(layer.N, layer.C, layer.H, layer.W))
        x[rng.random(x.shape) < 0.4] = 0
        w = rng.integers(-lim, lim, size=(layer.M, layer.Cg, layer.R, layer.S))
        return s, build_program(mapping, x, w)
    raise ValueError(f"no test layer maps onto {params.name}: {last}")


def harness(params: AcceleratorParams, *, spec: str | None = None, slices: bool = True):
    """The harness running :func:`harness_program`'s layer: ``(Harness, spec, Program)``.
    Its DRAM model holds the program's image in the smallest power-of-two depth >= 256;
    ``slices``: see :class:`hw.harness.Harness`."""
    from hw.harness import Harness
    spec, prog = harness_program(params, spec=spec)
    depth = 1 << max(8, (len(prog.dram) - 1).bit_length())
    top = Harness(params, descriptors=[d.pack(params) for d in prog.descriptors],
                  dram_init=prog.dram, dram_depth=depth, slices=slices)
    return top, spec, prog


#: What a flow synthesizes: the whole accelerator in :class:`hw.harness.Harness`, or the PE
#: array alone between registers (:class:`hw.harness.ArrayHarness`).
UNITS = ("accelerator", "array")


def harness_verilog(params: AcceleratorParams, family: str = "ecp5",
                    unit: str = "accelerator") -> tuple[str, dict]:
    """Verilog of the harness (module ``rowstat_fpga``, the unit under test its submodule
    ``accel``) for a device ``family`` and a summary of what it runs. On iCE40 the harness
    has no register slices (:class:`hw.harness.Harness`): ``pico`` fills the UP5K without
    room for them. ``unit="array"``: the PE array alone (:class:`hw.harness.ArrayHarness`)."""
    from amaranth.back import verilog

    from gen.emit import dedupe_modules
    if unit not in UNITS:
        raise ValueError(f"unit = {unit!r} is invalid: allowed {', '.join(UNITS)}")
    if unit == "array":
        from hw.harness import ArrayHarness
        top, summary = ArrayHarness(params), {"unit": unit}
    else:
        top, spec, prog = harness(params, slices=family != "ice40")
        summary = {"unit": unit, "layer": spec, "passes": len(prog.descriptors),
                   "dram_words": top.dram_depth}
    return dedupe_modules(verilog.convert(top, name=TOP, emit_src=False,
                                          platform=Device(family))), summary


@dataclass(frozen=True)
class Device:
    """The ``platform`` the flow elaborates the design for: the device family, from which the
    gateware chooses how to meet the device (on ``"ice40"`` each PE's filter scratchpad keeps
    a synchronous read port for the block RAM, see :class:`hw.pe.PE`). Amaranth's vendor
    platforms have the same ``family`` attribute."""
    family: str


# ---- tools ----------------------------------------------------------------------------------

def _tool(name: str) -> str:
    """The YoWASP binary ``yowasp-<name>``: next to this Python first, then on PATH."""
    exe = f"yowasp-{name}"
    local = Path(sys.executable).parent / exe
    if local.exists():
        return str(local)
    found = shutil.which(exe)
    if not found:
        raise FlowError(f"{exe} is not installed (pip install the yowasp packages, see "
                        f"pyproject.toml)")
    return found


def _env() -> dict:
    """Environment for amaranth's build scripts: the YoWASP tools under amaranth's names."""
    env = dict(os.environ)
    env.update(YOSYS=_tool("yosys"), NEXTPNR_ECP5=_tool("nextpnr-ecp5"),
               ECPPACK=_tool("ecppack"), NEXTPNR_ICE40=_tool("nextpnr-ice40"),
               ICEPACK=_tool("icepack"), OPENFPGALOADER="true", ICEPROG="true")
    return env


def _run(argv: list[str], cwd: Path, log: Path, what: str, timeout: float | None):
    """Run one tool in ``cwd`` (YoWASP tools see only the working directory), output to
    ``log``; a failure raises :class:`FlowError` with the tool's first error line."""
    with open(log, "w") as f:
        # its own process group, so that a timeout also stops the tools a build script started
        proc = subprocess.Popen(argv, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, env=_env(),
                                start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except BaseException as e:       # the timeout, or an interrupt: stop the whole group
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
            if isinstance(e, subprocess.TimeoutExpired):
                raise FlowError(f"{what} did not finish within {timeout:.0f} s (log: {log})") \
                    from None
            raise
    if proc.returncode < 0:              # stopped from outside: its last line is no reason
        raise FlowError(f"{what} was stopped by {signal.Signals(-proc.returncode).name} "
                        f"(log: {log})")
    if proc.returncode:
        raise FlowError(f"{what} failed: {_first_error(log)} (log: {log})")


def _first_error(log: Path) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    for line in text.splitlines():
        if line.startswith("ERROR") or "error:" in line.lower():
            return line.strip()
    tail = [ln for ln in text.splitlines() if ln.strip()]
    return tail[-1].strip() if tail else "no output"


def _yosys_script(family: str, sources: list[str], *, stat: str, netlist: str | None,
                  stop_before_luts: bool = False) -> str:
    """Read the Verilog, keep the accelerator's hierarchy, synthesize, write the statistics."""
    synth = "synth_ecp5" if family == "ecp5" else "synth_ice40 -dsp"
    lines = [f"read_verilog {s}" for s in sources]
    lines += [f"hierarchy -top {TOP}", _after_read(),
              f"{synth} -top {TOP}" + (" -run :map_luts" if stop_before_luts else "")]
    lines += [f"tee -q -o {stat} stat -json"]
    if netlist:
        lines += [f"write_json {netlist}"]
    return "\n".join(lines) + "\n"


def _after_read() -> str:
    """Yosys commands after reading the design: keep the accelerator's hierarchy (its cells
    are reported apart from the harness's), and keep the flip-flops of deliberate register
    copies (:data:`hw.array.REPLICA_ATTR`), which ``opt_merge`` would fold into one."""
    return "\n".join([f"setattr -mod -set keep_hierarchy 1 {ACCEL}", "proc",
                      f"setattr -set keep 1 a:{REPLICA_ATTR} %ci1:+$dff[Q] t:$dff %i"])


def yosys_cells(params: AcceleratorParams, family: str, work: str | Path, *,
                map_luts: bool = True, timeout: float | None = None,
                unit: str = "accelerator") -> dict:
    """Yosys synthesis only (no place and route): the cell counts of the harness and of the
    unit under test (key ``accelerator``: the accelerator, or the PE array with
    ``unit="array"``). ``map_luts=False`` stops before LUT mapping (DSPs, block RAMs, LUT RAM
    and flip-flops are mapped by then; the LUT counts are not), which is much faster."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    text, _ = harness_verilog(params, family, unit)
    (work / f"{TOP}.v").write_text(text)
    (work / "synth.ys").write_text(_yosys_script(family, [f"{TOP}.v"], stat="stat.json",
                                                 netlist=None,
                                                 stop_before_luts=not map_luts))
    _run([_tool("yosys"), "-q", "-l", "yosys.log", "synth.ys"], work, work / "yosys.out",
         "Yosys", timeout)
    return _cells(json.loads((work / "stat.json").read_text()), family)


def _cells(stat: dict, family: str) -> dict:
    """Cell counts by class from Yosys's ``stat -json``: the whole design and the accelerator."""
    def classify(by_type: dict) -> dict:
        kinds = _CELLS[family]
        def total(types):
            return sum(n for t, n in by_type.items() for k in types if t.startswith(k))
        out = {"luts": sum(by_type.get(t, 0) * w for t, w in kinds["lut"].items()),
               "ffs": total(kinds["ff"]), "dsps": total(kinds["dsp"]),
               "brams": total(kinds["bram"]), "lutram": total(kinds["lutram"]),
               "spram": total(kinds["spram"])}
        out["cells"] = {t: n for t, n in sorted(by_type.items())
                        if not t.startswith("$scopeinfo") and "." not in t}
        return out
    modules = stat["modules"]
    accel = modules.get("\\" + ACCEL) or modules.get(ACCEL)
    design = classify(stat["design"]["num_cells_by_type"])
    design["accelerator"] = classify(accel["num_cells_by_type"]) if accel else None
    return design


# ---- nextpnr reports ------------------------------------------------------------------------

_UTIL = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%", re.M)
_FMAX = re.compile(r"Max frequency for clock '([^']+)': ([\d.]+) MHz \((PASS|FAIL) at "
                   r"([\d.]+) MHz\)")


def _utilisation(log_text: str) -> dict:
    """The last 'Device utilisation' block of a nextpnr log: {bel: (used, available)}."""
    util = {}
    for name, used, avail, _pct in _UTIL.findall(log_text):
        util[name] = (int(used), int(avail))
    return util


def _overflow(util: dict) -> list[str]:
    return [f"{bel} {used} of {avail}" for bel, (used, avail) in util.items() if used > avail]


def _clock_name(raw: str) -> str:
    """nextpnr's clock net name without the global-buffer decorations."""
    name = raw.replace("$glbnet$", "")
    name = re.sub(r"\$(TRELLIS_IO_IN|SB_IO_IN|SB_IO_IN_\w+)$", "", name)
    return name.split("$")[0] or raw


def _critical_path(report: dict) -> dict | None:
    """The worst path of the nextpnr JSON report: endpoints, logic levels, logic and routing
    delay, and the cells on it. A register-to-register path within a clock (what sets Fmax)
    wins over a longer one from or to an I/O pin (``<async>``, e.g. the reset input)."""
    paths = report.get("critical_paths") or []
    best = None
    for p in paths:
        steps = p.get("path") or []
        if not steps:
            continue
        delay = sum(s.get("delay", 0.0) for s in steps)
        clocked = "<async>" not in (p.get("from"), p.get("to"))
        if best is None or (clocked, delay) > (best[0], best[1]):
            best = (clocked, delay, p, steps)
    if best is None:
        return None
    _, delay, p, steps = best
    logic = [s for s in steps if s.get("type") == "logic"]
    routing = sum(s.get("delay", 0.0) for s in steps if s.get("type") == "routing")
    cells = []
    for s in steps:
        cell = (s.get("to") or {}).get("cell") or (s.get("from") or {}).get("cell")
        if cell and (not cells or cells[-1] != cell):
            cells.append(cell)
    return {"from": p.get("from"), "to": p.get("to"), "delay_ns": round(delay, 2),
            "logic_levels": len(logic), "cells_on_path": len(cells),
            "logic_ns": round(sum(s.get("delay", 0.0) for s in logic), 2),
            "routing_ns": round(routing, 2),
            "start": cells[0] if cells else None, "end": cells[-1] if cells else None,
            "cells": cells}


_CELL_SUFFIX = re.compile(r"(_TRELLIS_FF_Q|_DO[AB]\d+|_LUT4|_CCU2C|_PFUMX|_L6MUX21|\$).*$")


def _late_endpoints(report: dict, period_ns: float, top: int = 5) -> dict | None:
    """How many timing endpoints (flip-flop and block RAM inputs) settle later than
    ``period_ns`` after the launching clock edge (nextpnr's ``detailed_net_timings``: the
    arrival, without the setup time), of how many, and the ``top`` registers they belong to,
    latest first: what stands between the design and its clock target beyond the one
    critical path. Nets whose paths start at an input pin (nextpnr's ``<async>`` event, e.g.
    the reset into the flip-flops' set/reset inputs) are not clock paths: they are left out
    and counted apart (``from_pins``: those of them that arrive after the period)."""
    nets = report.get("detailed_net_timings")
    if not nets:
        return None
    total, pins, groups = 0, 0, {}
    for net in nets:
        from_pin = net.get("event") == "<async>"
        for e in net.get("endpoints") or []:
            delay = e.get("delay")
            arrival = delay[-1] if isinstance(delay, list) else delay
            if arrival is None:
                continue
            if from_pin:
                pins += arrival > period_ns
                continue
            total += 1
            if arrival > period_ns:
                name = _CELL_SUFFIX.sub("", e.get("cell", "?")) or e.get("cell", "?")
                g = groups.setdefault(name, [0, 0.0])
                g[0] += 1
                g[1] = max(g[1], arrival)
    late = sorted(groups.items(), key=lambda kv: -kv[1][1])
    return {"period_ns": round(period_ns, 2), "late": sum(g[0] for g in groups.values()),
            "total": total, "from_pins": pins,
            "groups": [{"name": n, "endpoints": g[0], "worst_arrival_ns": round(g[1], 2)}
                       for n, g in late[:top]]}


def _pnr_result(log: Path, report_json: Path) -> dict:
    text = log.read_text(errors="replace") if log.exists() else ""
    util = _utilisation(text)
    clocks = {}
    for raw, fmax, verdict, target in _FMAX.findall(text):
        clocks[_clock_name(raw)] = {"fmax_mhz": float(fmax), "target_mhz": float(target),
                                    "met": verdict == "PASS"}
    critical = late = None
    if report_json.exists():
        rep = json.loads(report_json.read_text())
        for raw, v in (rep.get("fmax") or {}).items():
            name = _clock_name(raw)
            clocks[name] = {"fmax_mhz": round(float(v["achieved"]), 2),
                            "target_mhz": round(float(v["constraint"]), 2),
                            "met": float(v["achieved"]) >= float(v["constraint"])}
        for bel, v in (rep.get("utilization") or {}).items():
            util[bel] = (int(v["used"]), int(v["available"]))
        critical = _critical_path(rep)
        if clocks:
            late = _late_endpoints(rep, 1000 / min(c["target_mhz"] for c in clocks.values()))
    return {"utilization": util, "clocks": clocks, "critical_path": critical,
            "late_endpoints": late}


def _check_fit(log: Path, target: Target):
    """Raise :class:`FitError` naming what ran out, if nextpnr's log says so."""
    text = log.read_text(errors="replace") if log.exists() else ""
    over = _overflow(_utilisation(text))
    if over:
        raise FitError(f"the design does not fit {target.name}: {', '.join(over)} "
                       f"(log: {log})")
    m = re.search(r"^ERROR: (.*(?:no BELs remaining|Unable to place|not enough|"
                  r"failed to place|Failed to (?:legalise|expand)).*)$", text, re.M)
    if m:
        raise FitError(f"the design does not fit {target.name}: {m.group(1).strip()} "
                       f"(log: {log})")


# ---- the flow -------------------------------------------------------------------------------

def _constraint(target: Target, clock_mhz: float | None, out: Path) -> tuple[Path, float]:
    """Copy the target's clock constraint into ``out``, with ``clock_mhz`` if given."""
    src = (CONSTRAINTS / target.constraint).read_text()
    if target.family == "ecp5":
        pattern = re.compile(r'(FREQUENCY\s+PORT\s+"clk"\s+)([\d.]+)(\s*MHz)')
    else:
        pattern = re.compile(r"(set_frequency\s+clk\s+)([\d.]+)()")
    m = pattern.search(src)
    if not m:
        raise FlowError(f"{CONSTRAINTS / target.constraint} has no clock constraint for 'clk'")
    mhz = float(m.group(2)) if clock_mhz is None else float(clock_mhz)
    text = pattern.sub(lambda mm: f"{mm.group(1)}{mhz:g}{mm.group(3)}", src, count=1)
    path = out / target.constraint
    path.write_text(text)
    return path, mhz


def _device_flow(target: Target, out: Path, *, clock_mhz, bitstream, stage, timeout, seed,
                 say) -> dict:
    say(f"Yosys: synth_{target.family} ...")
    (out / "synth.ys").write_text(_yosys_script(target.family, [f"{TOP}.v"], stat="stat.json",
                                                netlist=f"{TOP}.json"))
    t = time.monotonic()
    _run([_tool("yosys"), "-q", "-l", "yosys.log", "synth.ys"], out, out / "yosys.out",
         "Yosys", timeout)
    times = {"yosys_s": round(time.monotonic() - t, 1)}
    result = {"cells": _cells(json.loads((out / "stat.json").read_text()), target.family),
              "times": times}
    if stage == "synth":
        return result
    cons, mhz = _constraint(target, clock_mhz, out)
    result["clock_target_mhz"] = mhz
    argv = [_tool(f"nextpnr-{target.family}"), *target.nextpnr_device, "--json", f"{TOP}.json",
            "--report", "report.json", "--detailed-timing-report", "--timing-allow-fail",
            "--seed", str(seed), "--log", "nextpnr.log", "-q"]
    if stage == "pack":
        argv += ["--pack-only"]
    if target.family == "ecp5":
        argv += ["--lpf", cons.name, "--lpf-allow-unconstrained", "--router", "router2"]
        if bitstream:
            argv += ["--textcfg", f"{TOP}.config"]
    else:
        argv += ["--pcf", cons.name, "--pcf-allow-unconstrained"]
        if bitstream:
            argv += ["--asc", f"{TOP}.asc"]
    say(f"nextpnr-{target.family}: " + ("pack (device utilisation only)" if stage == "pack" else
                                         f"place and route at {mhz:g} MHz") + " ...")
    t = time.monotonic()
    try:
        _run(argv, out, out / "nextpnr.out", f"nextpnr-{target.family}", timeout)
    except FlowError as e:
        _check_fit(out / "nextpnr.log", target)
        raise e
    times["nextpnr_s"] = round(time.monotonic() - t, 1)
    _check_fit(out / "nextpnr.log", target)
    result.update(_pnr_result(out / "nextpnr.log", out / "report.json"))
    if stage == "pack":
        result["clocks"] = {}
    if bitstream and stage == "route":
        t = time.monotonic()
        if target.family == "ecp5":
            _run([_tool("ecppack"), "--compress", f"{TOP}.config", f"{TOP}.bit"], out,
                 out / "ecppack.out", "ecppack", timeout)
            result["bitstream"] = str(out / f"{TOP}.bit")
        else:
            _run([_tool("icepack"), f"{TOP}.asc", f"{TOP}.bin"], out, out / "icepack.out",
                 "icepack", timeout)
            result["bitstream"] = str(out / f"{TOP}.bin")
        times["pack_s"] = round(time.monotonic() - t, 1)
    return result


def _board_top(target: Target):
    """The board wrapper: the harness (a Verilog instance) on the board's clock and LEDs."""
    from amaranth.hdl import ClockSignal, Elaboratable, Instance, Module, ResetSignal, Signal

    class BoardTop(Elaboratable):
        def elaborate(self, platform):
            m = Module()
            done, error, checksum = Signal(), Signal(), Signal(8)
            m.submodules.harness = Instance(
                TOP, i_clk=ClockSignal("sync"),
                i_rst=ResetSignal("sync", allow_reset_less=True),     # ULX3S: reset-less
                o_done=done, o_error=error, o_checksum=checksum)
            shown = [done, error] + ([checksum[i] for i in range(6)]
                                     if target.family == "ecp5" else [])
            for i, bit in enumerate(shown):
                m.d.comb += platform.request("led", i).o.eq(bit)
            return m

    return BoardTop()


def _board_flow(target: Target, out: Path, *, verilog: str, timeout, seed, say) -> dict:
    import amaranth_boards.icebreaker
    import amaranth_boards.ulx3s
    module = amaranth_boards.ulx3s if target.family == "ecp5" else amaranth_boards.icebreaker
    platform = getattr(module, target.board)()
    platform.add_file(f"{TOP}.v", verilog)
    synth_opts = "-dsp" if target.family == "ice40" else ""
    plan = platform.build(
        _board_top(target), name="rowstat", build_dir=str(out), do_build=False,
        synth_opts=synth_opts, script_after_read=_after_read(),
        script_after_synth="tee -q -o stat.json stat -json",
        nextpnr_opts=f"--report report.json --detailed-timing-report --timing-allow-fail "
                     f"--seed {seed}" + (" --router router2" if target.family == "ecp5" else ""))
    plan.extract(str(out))
    say(f"amaranth-boards {target.board}: Yosys, nextpnr-{target.family}, "
        f"{'ecppack' if target.family == 'ecp5' else 'icepack'} ...")
    t = time.monotonic()
    try:
        _run(["sh", f"{plan.script}.sh"], out, out / "build.out", f"the {target.name} build",
             timeout)
    except FlowError as e:
        _check_fit(out / "rowstat.tim", target)
        raise e
    result = {"cells": _cells(json.loads((out / "stat.json").read_text()), target.family),
              "times": {"build_s": round(time.monotonic() - t, 1)},
              "clock_target_mhz": target.board_clock_mhz}
    result.update(_pnr_result(out / "rowstat.tim", out / "report.json"))
    bit = out / ("rowstat.bit" if target.family == "ecp5" else "rowstat.bin")
    if bit.exists():
        result["bitstream"] = str(bit)
    return result


STAGES = ("synth", "pack", "route")


def synthesize(params: AcceleratorParams, target: str, out_dir: str | Path, *,
               clock_mhz: float | None = None, bitstream: bool = False, stage: str = "route",
               timeout: float | None = None, seed: int = 1, unit: str = "accelerator",
               progress=None) -> dict:
    """Synthesize (and place and route) ``params`` for ``target``; returns the report.

    ``clock_mhz`` is the timing target of a device target (default: the constraint file's);
    board targets run at their oscillator's frequency. ``timeout`` bounds each tool run.
    ``stage`` stops the flow early on a device target: ``"synth"`` after Yosys, ``"pack"``
    after nextpnr's packing (the device utilisation, so whether it fits, but no timing).
    ``unit="array"`` synthesizes the PE array alone between registers (see
    :class:`hw.harness.ArrayHarness`) instead of the whole accelerator in its harness.
    Raises :class:`FitError` when the design does not fit, :class:`FlowError` when a tool
    fails, ``ValueError`` on bad arguments.
    """
    if unit not in UNITS:
        raise ValueError(f"unit = {unit!r} is invalid: allowed {', '.join(UNITS)}")
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}: allowed {', '.join(TARGETS)}")
    tgt = TARGETS[target]
    if clock_mhz is not None:
        if tgt.board:
            raise ValueError(f"--clock applies to the device targets (ecp5-85f, up5k): "
                             f"{target} runs from its {tgt.board_clock_mhz:g} MHz oscillator")
        if not 1 <= clock_mhz <= 1000:
            raise ValueError(f"--clock = {clock_mhz:g} is out of range: allowed 1..1000 MHz")
    if stage not in STAGES:
        raise ValueError(f"stage = {stage!r} is invalid: allowed {', '.join(STAGES)}")
    if tgt.board and stage != "route":
        raise ValueError(f"{target} is a board target: it always places, routes and packs")
    say = progress or (lambda m: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    say(f"harness Verilog for {params.name} ({params.rows}x{params.cols} PEs"
        f"{', the array alone' if unit == 'array' else ''}) ...")
    text, harness = harness_verilog(params, tgt.family, unit)
    (out / f"{TOP}.v").write_text(text)
    if tgt.board:
        res = _board_flow(tgt, out, verilog=text, timeout=timeout, seed=seed, say=say)
    else:
        res = _device_flow(tgt, out, clock_mhz=clock_mhz, bitstream=bitstream, stage=stage,
                           timeout=timeout, seed=seed, say=say)
    cells = res["cells"]
    clocks = res.get("clocks") or {}
    main = _main_clock(clocks)
    report = {
        "target": target, "device": tgt.description, "stage": stage, "family": tgt.family,
        "preset": params.name, "hardware_hash": params.hardware_hash, "unit": unit,
        "array": f"{params.rows}x{params.cols}", "data_width": params.data_width,
        "luts": cells["luts"], "ffs": cells["ffs"], "dsps": cells["dsps"],
        "brams": cells["brams"], "lutram": cells["lutram"], "spram": cells["spram"],
        "fmax_mhz": clocks[main]["fmax_mhz"] if main else None,
        "clock_target_mhz": res.get("clock_target_mhz"),
        "timing_met": all(c["met"] for c in clocks.values()) if clocks else None,
        "clocks": clocks,
        "utilization": {k: {"used": u, "available": a}
                        for k, (u, a) in res.get("utilization", {}).items()
                        if k in _BELS[tgt.family]},
        "accelerator": cells["accelerator"],
        "harness": harness,
        "critical_path": res.get("critical_path"),
        "late_endpoints": res.get("late_endpoints"),
        "cells": cells["cells"],
        "bitstream": res.get("bitstream"),
        "times": res["times"],
        "wall_s": round(time.monotonic() - t0, 1),
        "out_dir": str(out),
    }
    (out / "report.txt").write_text(format_report(report) + "\n")
    (out / "fpga_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _main_clock(clocks: dict) -> str | None:
    """The design's clock (the harness has one): the slowest if nextpnr reports several."""
    if not clocks:
        return None
    return min(clocks, key=lambda c: clocks[c]["fmax_mhz"])


def format_report(r: dict) -> str:
    """The report as text, as ``rowstat synth`` prints it."""
    acc = r["accelerator"] or {}
    dsp = "MULT18X18D" if r["family"] == "ecp5" else "SB_MAC16"
    ram = "DP16KD" if r["family"] == "ecp5" else "SB_RAM40_4K"
    lines = [f"{r['preset']} ({r['array']} PEs, {r['data_width']}-bit) on {r['device']}",
             f"  {'':14} {'design':>8} {r.get('unit', 'accelerator'):>12}",
             f"  {'LUT4':14} {r['luts']:>8} {acc.get('luts', '-'):>12}",
             f"  {'flip-flops':14} {r['ffs']:>8} {acc.get('ffs', '-'):>12}",
             f"  {dsp:14} {r['dsps']:>8} {acc.get('dsps', '-'):>12}",
             f"  {ram:14} {r['brams']:>8} {acc.get('brams', '-'):>12}"]
    if r["family"] == "ecp5":
        lines.append(f"  {'LUT RAM 16x4':14} {r['lutram']:>8} {acc.get('lutram', '-'):>12}")
    else:
        lines.append(f"  {'SPRAM':14} {r['spram']:>8} {acc.get('spram', '-'):>12}")
    if r["utilization"]:
        lines.append("  device: " + ", ".join(
            f"{k} {v['used']}/{v['available']} ({100 * v['used'] / max(1, v['available']):.0f}%)"
            for k, v in r["utilization"].items() if v["used"]))
    for name, c in r["clocks"].items():
        lines.append(f"  clock {name}: Fmax {c['fmax_mhz']:.2f} MHz, target "
                     f"{c['target_mhz']:g} MHz: timing {'met' if c['met'] else 'NOT met'}")
    cp = r.get("critical_path")
    if cp:
        lines.append(f"  critical path: {cp['delay_ns']} ns through {cp['cells_on_path']} cells "
                     f"({cp['logic_levels']} logic steps, {cp['logic_ns']} ns logic, "
                     f"{cp['routing_ns']} ns routing), {cp['start']} -> {cp['end']}")
    le = r.get("late_endpoints")
    if le and le["late"]:
        lines.append(f"  late endpoints: {le['late']} of {le['total']} arrive after the "
                     f"{le['period_ns']} ns period; latest: " + ", ".join(
                         f"{g['name']} ({g['endpoints']}, {g['worst_arrival_ns']} ns)"
                         for g in le["groups"]))
    if le and le.get("from_pins"):
        lines.append(f"  (and {le['from_pins']} endpoints after the period on paths from input "
                     f"pins, e.g. the reset: not clock paths)")
    h = r["harness"]
    if h.get("unit") == "array":
        lines.append("  harness: the PE array alone, every input from a scan-chain flip-flop "
                     "(LFSR-fed), every output into a signature register")
    else:
        lines.append(f"  harness: runs {h['layer']} ({h['passes']} passes) from a "
                     f"{h['dram_words']}-word DRAM model in block RAM")
    if r.get("bitstream"):
        lines.append(f"  bitstream: {r['bitstream']}")
    lines.append(f"  wall time {r['wall_s']} s ({', '.join(f'{k[:-2]} {v} s' for k, v in r['times'].items())})")
    return "\n".join(lines)
