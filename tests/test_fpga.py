"""The FPGA flow: a Yosys synthesis smoke test of the tiny preset (no place and route -- that is
bench/fpga.py's job), the parsing of nextpnr's reports, and the CLI's input checks."""

from __future__ import annotations

import json
import math

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from gen.cli import main
from gen.fpga import (TARGETS, TOP, Device, FitError, _check_fit, _constraint, _pnr_result, _run,
                      _tool, _yosys_script, synthesize, yosys_cells)
from hw.array import REPLICA_ATTR
from hw.params import preset
from hw.top import TOP_COUNTERS

DP16KD_BITS = 18 * 1024


def test_tiny_synthesizes_to_dsps_block_ram_and_lut_ram(tmp_path):
    """Yosys maps the tiny accelerator onto ECP5 primitives (stopping before LUT mapping, which
    takes most of the time): one MULT18X18D per PE's MAC at least, the global buffer and the
    psum buffers in DP16KD block RAM, the scratchpads in LUT RAM, and as many flip-flops as the
    counters and the PEs' psum registers need at least -- so a design whose datapath was
    optimized away fails here."""
    p = preset("tiny")
    cells = yosys_cells(p, "ecp5", tmp_path, map_luts=False, timeout=600)
    acc = cells["accelerator"]
    assert acc is not None, "the accelerator must stay a module of its own"
    assert acc["dsps"] >= p.num_pes
    assert acc["cells"].get("MULT18X18D", 0) >= p.num_pes
    glb_bits = p.glb_words * p.dram_width
    psum_buf_bits = p.cols * p.psum_buf_depth * p.psum_width
    assert acc["brams"] >= math.ceil((glb_bits + psum_buf_bits) / DP16KD_BITS)
    # ifmap (12 x 8) and filter (32 x 8) scratchpads: 16x4 LUT RAMs, at least 2 per PE
    assert acc["lutram"] >= 2 * p.num_pes
    ff_floor = len(TOP_COUNTERS) * p.counter_width + p.num_pes * p.psum_spad_depth * p.psum_width
    assert ff_floor <= acc["ffs"] < 10 * ff_floor
    # the harness around it: its DRAM model is block RAM too
    assert cells["brams"] > acc["brams"]


class _Copies(wiring.Component):
    """Two registered copies of one input, each driving an output of its own."""

    def __init__(self, attrs):
        self._attrs = attrs
        super().__init__({"i": In(8), "a": Out(8), "b": Out(8)})

    def elaborate(self, platform):
        m = Module()
        ra, rb = (Signal(8, name=n, attrs=self._attrs) for n in ("ra", "rb"))
        m.d.sync += [ra.eq(self.i), rb.eq(self.i)]
        m.d.comb += [self.a.eq(ra), self.b.eq(rb)]
        return m


@pytest.mark.parametrize("attrs, ffs", [({REPLICA_ATTR: 1}, 16), ({}, 8)])
def test_replica_registers_survive_synthesis(tmp_path, attrs, ffs):
    """Registers marked as deliberate copies (the array's per-row configuration) keep their
    flip-flops through the flow's Yosys script; unmarked identical registers are merged."""
    (tmp_path / "t.v").write_text(verilog.convert(_Copies(attrs), name=TOP))
    (tmp_path / "t.ys").write_text(_yosys_script("ecp5", ["t.v"], stat="stat.json",
                                                 netlist=None))
    _run([_tool("yosys"), "-q", "t.ys"], tmp_path, tmp_path / "yosys.out", "Yosys", 300)
    stat = json.loads((tmp_path / "stat.json").read_text())
    assert stat["design"]["num_cells_by_type"]["TRELLIS_FF"] == ffs


def test_pico_fits_the_up5k_with_one_controller_multiplier(tmp_path):
    """The pico preset is the design point the iCEBreaker acceptance builds: Yosys and
    nextpnr's packer (no placement) must find it within the iCE40UP5K, with one SB_MAC16 per
    PE plus the descriptor check's single shared multiplier (hw/check.py) -- the controller
    has no other -- and with enough logic that nothing was optimized away."""
    p = preset("pico")
    r = synthesize(p, "up5k", tmp_path, stage="pack", timeout=900)
    lc = r["utilization"]["ICESTORM_LC"]
    assert 2000 < lc["used"] <= lc["available"] == 5280, lc
    assert r["accelerator"]["cells"].get("SB_MAC16") == p.num_pes + 1
    assert r["accelerator"]["brams"] >= 1


_LOG = """\
Info: Device utilisation:
Info: 	         ICESTORM_LC:  7310/  5280   138%
Info: 	        ICESTORM_RAM:    24/    30    80%
Info: 	               SB_IO:     3/    96     3%
Info: 	              SB_GB:     8/     8   100%
Info: 	        ICESTORM_DSP:    12/     8   150%
ERROR: Unable to place cell 'x', no BELs remaining to implement cell type 'ICESTORM_LC'
"""


def test_unfit_design_names_what_ran_out(tmp_path):
    log = tmp_path / "nextpnr.log"
    log.write_text(_LOG)
    with pytest.raises(FitError, match=r"does not fit up5k: ICESTORM_LC 7310 of 5280, "
                                       r"ICESTORM_DSP 12 of 8"):
        _check_fit(log, TARGETS["up5k"])
    log.write_text(_LOG.replace("7310", "5000").replace("    12/", "     8/"))
    with pytest.raises(FitError, match="no BELs remaining"):
        _check_fit(log, TARGETS["up5k"])
    log.write_text("Info: Device utilisation:\nInfo: \t ICESTORM_LC:  100/  5280     1%\n")
    _check_fit(log, TARGETS["up5k"])       # fits: no error


def test_fmax_and_utilisation_from_the_nextpnr_log(tmp_path):
    log = tmp_path / "nextpnr.log"
    log.write_text(_LOG.splitlines()[0] + "\nInfo: \t          MULT18X18D:      37/    156    23%\n"
                   "Info: Max frequency for clock '$glbnet$clk$TRELLIS_IO_IN': 12.84 MHz "
                   "(FAIL at 100.00 MHz)\n"
                   "Info: Max frequency for clock 'clk': 112.50 MHz (PASS at 100.00 MHz)\n")
    r = _pnr_result(log, tmp_path / "missing.json")
    assert r["utilization"]["MULT18X18D"] == (37, 156)
    assert r["clocks"]["clk"] == {"fmax_mhz": 112.5, "target_mhz": 100.0, "met": True}


def test_critical_path_is_the_clocks_not_the_reset_pins():
    """The reported path is the clock's register-to-register one (what sets Fmax), even when
    the path from the reset pin is longer."""
    from gen.fpga import _critical_path

    def step(kind, delay, cell):
        return {"type": kind, "delay": delay, "from": {"cell": cell}, "to": {"cell": cell}}
    clk = "posedge $glbnet$clk$TRELLIS_IO_IN"
    report = {"critical_paths": [
        {"from": clk, "to": clk, "path": [step("clk-to-q", 0.5, "a"), step("routing", 9.0, "b"),
                                          step("logic", 0.3, "b")]},
        {"from": "<async>", "to": clk, "path": [step("routing", 15.0, "rst")]},
    ]}
    cp = _critical_path(report)
    assert (cp["start"], cp["end"], cp["delay_ns"], cp["logic_levels"]) == ("a", "b", 9.8, 1)
    report["critical_paths"] = report["critical_paths"][1:]
    assert _critical_path(report)["start"] == "rst"


def test_late_endpoints_are_counted_and_grouped_by_register(tmp_path):
    """Every endpoint of a clock path that arrives after the period counts; the bits of one
    register (and the cells Yosys and nextpnr name after it) are one group, latest first;
    paths from input pins (the reset) are counted apart."""
    from gen.fpga import _late_endpoints

    def ep(cell, arrival):
        return {"cell": cell, "port": "DI", "event": "posedge clk", "delay": [0.5, arrival]}
    report = {"detailed_net_timings": [
        {"net": "a", "endpoints": [ep("accel.w_ptr_TRELLIS_FF_Q_7", 13.8),
                                   ep("accel.w_ptr_TRELLIS_FF_Q", 12.0),
                                   ep("accel.ok_TRELLIS_FF_Q", 9.0)]},
        {"net": "b", "endpoints": [ep("accel.glb.1.5", 10.0),
                                   ep("accel.glb.1.5_DOA3_TRELLIS_FF_Q", 9.5),
                                   ep("accel.early_TRELLIS_FF_Q_2", 3.0)]},
        # from the reset pin: not a clock path, counted apart
        {"net": "rst", "event": "<async>",
         "endpoints": [ep("accel.w_ptr_TRELLIS_FF_Q_7", 15.0), ep("accel.ok_TRELLIS_FF_Q", 2.0)]},
    ]}
    le = _late_endpoints(report, 9.09)
    assert (le["late"], le["total"], le["period_ns"], le["from_pins"]) == (4, 6, 9.09, 1)
    assert le["groups"] == [
        {"name": "accel.w_ptr", "endpoints": 2, "worst_arrival_ns": 13.8},
        {"name": "accel.glb.1.5", "endpoints": 2, "worst_arrival_ns": 10.0}]
    assert _late_endpoints(report, 20.0)["late"] == 0
    assert _late_endpoints({}, 9.09) is None
    # read from the report next to the log, for the clock's target
    log = tmp_path / "nextpnr.log"
    log.write_text("Info: Max frequency for clock 'clk': 72.30 MHz (FAIL at 110.01 MHz)\n")
    rep = tmp_path / "report.json"
    rep.write_text(json.dumps(report))
    r = _pnr_result(log, rep)
    assert r["late_endpoints"]["late"] == 4 and r["late_endpoints"]["period_ns"] == 9.09


def test_clock_constraint_is_rewritten(tmp_path):
    path, mhz = _constraint(TARGETS["ecp5-85f"], 110, tmp_path)
    assert mhz == 110 and 'FREQUENCY PORT "clk" 110 MHz;' in path.read_text()
    # the clock pin stays on a primary clock input (left to nextpnr, it once could not reach
    # the global buffer)
    assert 'LOCATE COMP "clk" SITE "G2";' in path.read_text()
    path, mhz = _constraint(TARGETS["up5k"], None, tmp_path)
    assert "set_frequency clk" in path.read_text() and mhz > 0


def _cli(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr().err.strip().splitlines()


def test_unknown_target_lists_the_valid_ones(capsys):
    code, err = _cli(capsys, "synth", "--preset", "tiny", "--target", "nosuchboard")
    assert code == 2 and len(err) == 1
    for name in ("ulx3s-85f", "icebreaker", "ecp5-85f", "up5k"):
        assert name in err[0]


@pytest.mark.parametrize("argv, field", [
    (("--target", "icebreaker", "--clock", "50"), "--clock"),
    (("--target", "up5k", "--clock", "0"), "--clock = 0"),
    (("--target", "up5k", "--timeout", "-1"), "--timeout"),
    (("--target", "up5k", "--preset", "nosuch"), "unknown preset"),
])
def test_bad_synth_input_is_one_line_exit_2(capsys, tmp_path, argv, field):
    code, err = _cli(capsys, "synth", *argv, "-o", str(tmp_path))
    assert code == 2 and len(err) == 1 and field in err[0]


@pytest.mark.parametrize("slices", [True, False])
def test_harness_runs_its_layer_to_the_golden_output(slices):
    """The on-chip harness is a working system, not just a load for synthesis: from reset it
    sends every descriptor, its block-RAM DRAM model serves the accelerator's DMA, and the
    output region it holds at the end equals the numpy executor's (= the golden model's)."""
    from amaranth.sim import Simulator

    from gen.fpga import harness
    from gen.program import execute
    params = preset("tiny").replace(name="h3x2", rows=3, cols=2)
    top, _spec, prog = harness(params, spec="C=2,M=3,H=5,W=5,R=3,S=3,stride=1,pad=1",
                               slices=slices)
    expected = execute(prog, params)
    got = {}

    async def bench(ctx):
        for _ in range(20000):
            await ctx.tick()
            if ctx.get(top.done):
                break
        got["done"] = ctx.get(top.done)
        got["error"] = ctx.get(top.error)
        got["out"] = [ctx.get(top.dram.data[a])
                      for a in range(prog.out_base, prog.out_base + prog.out_words)]

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got["done"] and not got["error"]
    assert got["out"] == list(expected[prog.out_base:prog.out_base + prog.out_words])
    assert any(got["out"])


def test_a_tool_timeout_stops_the_whole_build(tmp_path):
    """A board build is a shell script starting the tools: the timeout must stop them all."""
    import os
    import time

    from gen.fpga import FlowError, _run
    pidfile = tmp_path / "child.pid"
    t0 = time.monotonic()
    with pytest.raises(FlowError, match="did not finish within 1 s"):
        _run(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], tmp_path,
             tmp_path / "log", "the build", 1)
    assert time.monotonic() - t0 < 30
    child = int(pidfile.read_text())
    for _ in range(50):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the script's child survived the timeout")


def test_a_tool_stopped_from_outside_says_so(tmp_path):
    """A tool killed by a signal (by hand, or by the machine) is reported as stopped, not
    with its last output line as if that were an error."""
    from gen.fpga import FlowError, _run
    with pytest.raises(FlowError, match="nextpnr-ecp5 was stopped by SIGTERM"):
        _run(["sh", "-c", "echo \"Warning: IO 'x' is unconstrained\"; kill -TERM $$"],
             tmp_path, tmp_path / "log", "nextpnr-ecp5", 30)


@pytest.mark.parametrize("style, lutram, bram", [("lut", True, False), ("block", False, True)])
def test_filter_spad_ram_parameter_places_the_scratchpad(tmp_path, style, lutram, bram):
    """``filter_spad_ram`` decides where a PE's filter scratchpad goes on ECP5: LUT RAM
    (TRELLIS_DPR16X4) or block RAM (DP16KD), and the MAC is one MULT18X18D. Yosys on one PE
    as the flow elaborates it, stopped before LUT mapping."""
    from hw.pe import PE
    p = preset("small").replace(filter_spad_ram=style)
    (tmp_path / "pe.v").write_text(verilog.convert(PE.from_params(p), name="pe",
                                                   platform=Device("ecp5"), emit_src=False))
    (tmp_path / "s.ys").write_text("read_verilog pe.v\nsynth_ecp5 -top pe -run :map_luts\n"
                                   "tee -q -o stat.json stat -json\n")
    _run([_tool("yosys"), "-q", "s.ys"], tmp_path, tmp_path / "yosys.log", "Yosys", 600)
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    assert (cells.get("DP16KD", 0) >= 1) == bram, cells
    # the ifmap scratchpad is LUT RAM either way (read combinationally): 12 x 16 bits
    assert cells.get("TRELLIS_DPR16X4", 0) >= (4 + 16 if lutram else 4), cells
    assert cells.get("MULT18X18D") == 1, cells


def test_array_alone_keeps_every_pe_and_its_ports(tmp_path):
    """The PE array alone between registers (bench/fpga.py's ``*-array-*`` runs): Yosys keeps
    the array as its module with a multiplier and LUT-RAM scratchpads per PE, the psum
    registers of every PE, and a flip-flop outside it for every input and output bit (the
    scan chain and the signature register) -- so the array's ports are all driven and
    observed, and the array is not optimized away."""
    from amaranth.hdl import Fragment, Value
    from amaranth.lib.wiring import Flow

    from hw.array import PEArray
    p = preset("tiny")
    cells = yosys_cells(p, "ecp5", tmp_path, map_luts=False, timeout=600, unit="array")
    arr = cells["accelerator"]
    assert arr is not None, "the array must stay a module of its own"
    assert arr["cells"].get("MULT18X18D", 0) >= p.num_pes
    assert arr["lutram"] >= 2 * p.num_pes
    assert arr["ffs"] >= p.num_pes * p.psum_spad_depth * p.psum_width
    a = PEArray(p)
    Fragment.get(a, None)                       # (elaborated: no "never used" warning)
    bits = {Flow.In: 0, Flow.Out: 0}
    for _path, member, value in a.signature.flatten(a):
        bits[member.flow] += len(Value.cast(value))
    # outside the array (the harness's own cells): the scan chain (its first 31 flip-flops
    # are the LFSR's, which Yosys merges), the signature register, and no memory
    stat = json.loads((tmp_path / "stat.json").read_text())["modules"]
    top = stat.get("\\" + TOP, stat.get(TOP))["num_cells_by_type"]
    assert top.get("TRELLIS_FF", 0) >= bits[Flow.In] + bits[Flow.Out]
    assert not any(k.startswith(("DP16KD", "TRELLIS_DPR")) for k in top)
    with pytest.raises(ValueError, match="unit = 'pe' is invalid: allowed accelerator, array"):
        yosys_cells(p, "ecp5", tmp_path, unit="pe")


def test_bench_seeds_summary_and_bad_seed_lists(capsys):
    """bench/fpga.py ``--seeds``: the per-run Fmax over seeds counts only routed rows, and a
    bad seed list is refused, naming the option and what it allows."""
    import runpy
    from pathlib import Path
    bench = runpy.run_path(str(Path(__file__).resolve().parents[1] / "bench" / "fpga.py"))
    rows = [{"run": "a", "fits": True, "fmax_mhz": 80.0},
            {"run": "a", "fits": True, "fmax_mhz": 70.5},
            {"run": "a", "fits": True, "fmax_mhz": 90.0},
            {"run": "a", "fits": None, "reason": "timeout"},
            {"run": "b", "fits": True, "fmax_mhz": 50.0},
            {"run": "b", "fits": True, "fmax_mhz": 60.0},
            {"run": "c", "fits": True, "fmax_mhz": None},       # packed only
            {"run": "d", "fits": False, "reason": "too big"}]
    assert bench["seed_summary"](rows) == {"a": (70.5, 80.0, 90.0, 3), "b": (50.0, 55.0, 60.0, 2)}
    for bad in ("1,x", "", "1,1", "-1"):
        with pytest.raises(SystemExit) as e:
            bench["main"](["--runs", "a2x2-ecp5", "--seeds", bad])
        assert e.value.code == 2
        assert "--seeds" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench["main"](["--seed", "2", "--seeds", "1,2"])
    assert "not allowed with" in capsys.readouterr().err
