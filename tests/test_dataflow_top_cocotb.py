"""WS and OS layers on the generated accelerator: Verilator and Icarus from one
parametrization, nominal DRAM or random latency and backpressure, every output word compared
with the golden model, every counter compared with the performance model (the RS checks of
tests/test_top_cocotb.py, applied to the other dataflows)."""

import pytest

from gen.run import TIMING, run_layer
from rtl_checks import assert_rtl_equals_model
from gen.workload import parse_layer
from hw.params import PRESETS
from tb.runner import SIMULATORS

TINY = PRESETS["tiny"]

# (id, layer, DRAM stall probability): strides 1/2/3/4, pads 0/1/2, R != S, 1x1, channels and
# filters beyond one pass, ofmap rows beyond the columns, N = 2, groups = 2, ReLU.
WS_SHAPES = [
    ("stride2-RneS", "C=5,M=7,H=11,W=9,R=3,S=2,stride=2,pad=1", 0.0),
    ("stride4", "C=2,M=3,H=15,W=15,R=5,S=5,stride=4", 0.3),
    ("pad2", "C=3,M=4,H=7,W=7,R=5,S=5,pad=2", 0.0),
    ("1x1-M9", "C=6,M=9,H=5,W=5,R=1,S=1", 0.3),
    ("C9M9-passes", "C=9,M=9,H=6,W=6,R=3,S=3,pad=1", 0.0),
    ("E10-stripmined", "C=1,M=2,H=12,W=8,R=3,S=3", 0.3),
    ("N2", "C=2,M=3,H=6,W=6,R=3,S=3,pad=1,N=2", 0.0),
    ("groups2", "C=4,M=6,H=6,W=6,R=3,S=3,pad=1,groups=2", 0.3),
    ("relu-shift4", "C=3,M=4,H=6,W=7,R=3,S=3,relu=1,shift=4", 0.0),
]
# OS holds a whole R x S filter channel in a PE's window: R*S <= 12 on the tiny preset.
OS_SHAPES = [
    ("stride2-RneS", "C=5,M=7,H=11,W=9,R=3,S=2,stride=2,pad=1", 0.0),
    ("R2xS4", "C=2,M=3,H=8,W=10,R=2,S=4,pad=1", 0.3),
    ("R4xS3-stride3", "C=2,M=3,H=13,W=13,R=4,S=3,stride=3,pad=1", 0.0),
    ("1x1", "C=6,M=5,H=5,W=5,R=1,S=1", 0.3),
    ("1x1-stride2", "C=4,M=4,H=8,W=8,R=1,S=1,stride=2", 0.0),
    ("C9M9-passes", "C=9,M=9,H=6,W=6,R=3,S=3,pad=1", 0.3),
    ("E10-stripmined", "C=1,M=2,H=12,W=8,R=3,S=3", 0.0),
    ("N2", "C=2,M=3,H=6,W=6,R=3,S=3,pad=1,N=2", 0.3),
    ("groups2-relu", "C=4,M=6,H=6,W=6,R=3,S=3,pad=1,groups=2,relu=1", 0.0),
]
CASES = [("ws", *s) for s in WS_SHAPES] + [("os", *s) for s in OS_SHAPES]


@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("flow, name, spec, stall", CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_dataflow_layer_on_rtl(sim, flow, name, spec, stall):
    r = run_layer(TINY, parse_layer(spec), dataflow=flow, sim=sim, seed=len(name),
                  stall_prob=stall)
    assert r["dataflow"] == flow and f": {flow} " in r["mapping"]
    assert r["match"], f"{name}: first mismatch {r['first_mismatch']}; see {r['log']}"
    assert_rtl_equals_model(r, stall)
    rtl = r["rtl_counters"]
    # each dataflow's reuse shows in the counters (tests/test_dataflow_model.py compares them
    # with RS's in detail)
    if flow == "ws":    # no psum stays in a PE
        assert rtl["psum_spad_reads"] == rtl["psum_spad_writes"] == 0
    else:               # every MAC slot uses a weight written for its output alone
        assert rtl["filter_spad_writes"] == rtl["macs"] + rtl["gated_macs"]


def test_filter_groups_on_a_four_lane_design():
    """With 4 weights per global-buffer word the 6 PE rows take their filters in two groups:
    OS reloads them group after group for every output. Icarus only (a second design, built
    in seconds there)."""
    params = TINY.replace(name="tiny_lanes4", dram_width=32)
    layer = parse_layer("C=12,M=3,H=6,W=6,R=3,S=3,pad=1")
    for flow in ("os", "ws"):
        r = run_layer(params, layer, dataflow=flow, sim="icarus", seed=5)
        if flow == "os":
            assert "vgroups=6" in r["mapping"]      # rows 0-3 in group 0, rows 4-5 in group 1
        assert r["match"], (flow, r["first_mismatch"], r["log"])
        assert r["counters_match_model"], (flow, r["counter_diffs"])
        rtl, model = r["rtl_counters"], r["model_counters"]
        assert {k: rtl[k] for k in TIMING} == {k: model[k] for k in TIMING}, flow
