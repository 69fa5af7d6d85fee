"""The generated PE Verilog on Verilator and Icarus: one parametrization, random stalls on
every stream, every psum word and counter compared with the golden model (the same cases as
``rowstat pe``)."""

import pytest

from gen.emit import emit
from hw.params import PRESETS
from tb.pe_regression import run_pe_regression
from tb.runner import SIMULATORS

TINY = PRESETS["tiny"]


@pytest.fixture(scope="module")
def verilog(tmp_path_factory):
    out = tmp_path_factory.mktemp("verilog")
    emit(TINY, out)
    return out / "rowstat_pe.v"


@pytest.mark.parametrize("sim", SIMULATORS)
def test_pe_verilog_matches_golden(sim, verilog, tmp_path):
    s = run_pe_regression(TINY, verilog, sim=sim, work=tmp_path, count=12, seed=5,
                          stall_prob=0.3)
    assert s["cases_run"] == s["cases"] >= 15, f"bench stopped early; see {s['log']}"
    for r in s["results"]:
        assert r["match"], r
        assert r["counters_match"], r
    assert s["passed"], f"cocotb reported a failure; see {s['log']}"
