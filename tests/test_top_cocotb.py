"""Whole layers on the generated accelerator: Verilator and Icarus from one parametrization,
the DRAM model with nominal timing or random latency and backpressure, every output word
compared with the golden model, every counter compared with the performance model."""

import pytest

from gen.run import run_layer
from rtl_checks import assert_rtl_equals_model
from gen.workload import parse_layer
from hw.params import PRESETS
from tb.runner import SIMULATORS

TINY = PRESETS["tiny"]

# (id, layer, DRAM stall probability): strides 1/2/4, pads 0/1/2, R != S, 1x1, channels and
# filters beyond one pass, ofmap rows beyond the columns, N = 2, groups = 2, ReLU.
SHAPES = [
    ("stride2-RneS", "C=5,M=7,H=11,W=9,R=3,S=2,stride=2,pad=1", 0.0),
    ("stride4", "C=2,M=3,H=15,W=15,R=5,S=5,stride=4", 0.3),
    ("pad2", "C=3,M=4,H=7,W=7,R=5,S=5,pad=2", 0.0),
    ("R2xS4", "C=2,M=3,H=8,W=10,R=2,S=4,pad=1", 0.3),
    ("1x1", "C=6,M=5,H=5,W=5,R=1,S=1", 0.0),
    ("1x1-stride2", "C=4,M=4,H=8,W=8,R=1,S=1,stride=2", 0.3),
    ("C9M9-passes", "C=9,M=9,H=6,W=6,R=3,S=3,pad=1", 0.0),
    ("E10-stripmined", "C=1,M=2,H=12,W=8,R=3,S=3", 0.3),
    ("N2", "C=2,M=3,H=6,W=6,R=3,S=3,pad=1,N=2", 0.0),
    ("groups2", "C=4,M=6,H=6,W=6,R=3,S=3,pad=1,groups=2", 0.3),
    ("relu-shift4", "C=3,M=4,H=6,W=7,R=3,S=3,relu=1,shift=4", 0.0),
    ("R6-all-rows", "C=1,M=2,H=8,W=8,R=6,S=2", 0.3),
]



@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("name, spec, stall", SHAPES, ids=[s[0] for s in SHAPES])
def test_layer_on_rtl(sim, name, spec, stall):
    r = run_layer(TINY, parse_layer(spec), sim=sim, seed=len(name), stall_prob=stall)
    assert r["match"], f"{name}: first mismatch {r['first_mismatch']}; see {r['log']}"
    assert_rtl_equals_model(r, stall)


@pytest.mark.parametrize("sim", SIMULATORS)
def test_pico_counts_only_cycles_and_passes(sim):
    """The pico preset (RS only, 32-bit DRAM, no RLC codec, counters = "cycles"): a layer
    still matches the golden model to the word and the model to the cycle; the counters
    left out read 0 and are not reported."""
    pico = PRESETS["pico"]
    assert pico.counters == "cycles"
    r = run_layer(pico, parse_layer("C=6,M=5,H=5,W=7,R=1,S=1"), sim=sim, seed=3)
    assert r["match"], f"first mismatch {r['first_mismatch']}; see {r['log']}"
    assert set(r["rtl_counters"]) == {"cycles", "passes"}
    assert r["cycles"] == r["model_cycles"] > 0
    assert r["rtl_counters"]["passes"] == r["passes"] == r["model_counters"]["passes"]
    assert r["dram_read_bytes"] is None and r["gated_macs"] is None
