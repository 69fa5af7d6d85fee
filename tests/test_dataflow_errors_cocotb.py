"""Generated hardware has only the dataflows of its parameters: a descriptor asking for another
one is consumed and dropped with DescError.DATAFLOW (never a hang), and the dataflows that are
there still run. Hardware variants other than the default are built for Icarus only (a few
seconds each); the default design refuses the unused code 3 on both simulators."""

import dataclasses

import pytest

from gen.emit import cached_verilog
from gen.mapper import map_layer
from gen.program import build_program
from gen.run import CACHE, layer_data, run_layer
from gen.workload import parse_layer
from hw.descriptor import DescError
from hw.params import PRESETS
from tb.runner import SIMULATORS
from tb.top_regression import run_program_bench

TINY = PRESETS["tiny"]
LAYER = parse_layer("C=3,M=4,H=6,W=6,R=3,S=3,pad=1")


def refused(params, desc, program, sim):
    """Run one descriptor; assert it was refused with DATAFLOW and nothing was loaded."""
    verilog = cached_verilog(params, "rowstat_top", CACHE)
    r = run_program_bench(params, verilog, descriptors=[desc.pack(params)], dram=program.dram,
                          out_base=program.out_base, out_words=program.out_words,
                          expected=[0] * program.out_words, sim=sim,
                          work=verilog.parent / "sim", cycle_limit=20_000)
    assert r.get("error") == 1, r.get("log")
    assert r["error_code"] == DescError.DATAFLOW.value, r["error_code"]
    assert r["passes_done"] == 0 and not r["timeout"]
    assert r["counters"]["dram_read_words"] == 0


def program(params, flow):
    x, w = layer_data(LAYER, params, 0)
    return build_program(map_layer(LAYER, params, flow), x, w)


@pytest.mark.parametrize("sim", SIMULATORS)
def test_unknown_dataflow_code_is_refused(sim):
    prog = program(TINY, "ws")
    bad = dataclasses.replace(prog.descriptors[0], dataflow=3)
    assert bad.error(TINY)[0] == DescError.DATAFLOW
    refused(TINY, bad, prog, sim)


@pytest.mark.parametrize("flows, runs, refuses", [
    (("rs",), "rs", ("ws", "os")),
    (("ws", "os"), "os", ("rs",)),
], ids=["rs-only", "ws-os"])
def test_hardware_without_a_dataflow_refuses_it(flows, runs, refuses):
    params = TINY.replace(name="tiny_" + "_".join(flows), dataflows=flows)
    for flow in refuses:
        # a descriptor built for the full design, sent to this one
        d = program(TINY, flow).descriptors[0]
        assert d.error(params)[0] == DescError.DATAFLOW
        refused(params, d, program(TINY, flow), "icarus")
    r = run_layer(params, LAYER, dataflow=runs, sim="icarus", seed=1)
    assert r["match"] and r["counters_match_model"], (r["counter_diffs"], r["log"])


# Checks whose verdict depends on the dataflow: the hardware's error code must be the one
# PassDescriptor.error() gives.
MODE_CORRUPTIONS = [
    # OS windows hold chans*filt_rows*taps words: 2*3*3 > 12 (RS would take chans = 2)
    ("os-window", "os", dict(chans=2), DescError.TAPS),
    # OS rows are channel groups: 7 > 6 rows
    ("os-rows", "os", dict(vgroups=7), DescError.ROWS),
    # WS holds no psums: 5 filters pass the filter check (the block size then does not)
    ("ws-filters", "ws", dict(filters=TINY.psum_spad_depth + 1), DescError.GLB),
    ("rs-filters", "rs", dict(filters=TINY.psum_spad_depth + 1), DescError.FILTERS),
]


@pytest.mark.parametrize("sim", SIMULATORS)
def test_checks_per_dataflow_match_the_mapper(sim):
    cases = MODE_CORRUPTIONS if sim == "verilator" else MODE_CORRUPTIONS[::2]
    for name, flow, change, code in cases:
        prog = program(TINY, flow)
        bad = dataclasses.replace(prog.descriptors[0], **change)
        assert bad.error(TINY)[0] == code, name
        verilog = cached_verilog(TINY, "rowstat_top", CACHE)
        r = run_program_bench(TINY, verilog, descriptors=[bad.pack(TINY)], dram=prog.dram,
                              out_base=prog.out_base, out_words=prog.out_words,
                              expected=[0] * prog.out_words, sim=sim,
                              work=verilog.parent / "sim", cycle_limit=20_000)
        assert r.get("error") == 1 and r["error_code"] == code.value, (name, r["error_code"])
        assert r["passes_done"] == 0 and not r["timeout"], name
