"""The generated PE Verilog on Verilator and Icarus, one parametrization, random stalls."""

import numpy as np
import pytest

from gen.emit import emit
from hw.params import PRESETS
from tb.pe_vectors import case_to_dict, extreme_case, make_case, random_config
from tb.runner import SIMULATORS, run_bench
from hw.pe import PERowConfig

TINY = PRESETS["tiny"]


@pytest.fixture(scope="module")
def verilog(tmp_path_factory):
    out = tmp_path_factory.mktemp("verilog")
    emit(TINY, out)
    return out / "rowstat_pe.v"


def cases(seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for n in range(10):
        cfg = random_config(rng, ifmap_depth=TINY.ifmap_spad_depth,
                            filter_depth=TINY.filter_spad_depth,
                            psum_depth=TINY.psum_spad_depth)
        out.append(make_case(rng, cfg, data_width=TINY.data_width,
                             psum_width=TINY.psum_width, zero_fraction=[0.0, 0.5, 0.9][n % 3]))
    out.append(extreme_case(PERowConfig(taps=3, channels=4, filters=2, width=8, rows=2,
                                        psum_in=True),
                            data_width=TINY.data_width, psum_width=TINY.psum_width))
    return [case_to_dict(c) for c in out]


@pytest.mark.parametrize("sim", SIMULATORS)
def test_pe_verilog_matches_golden(sim, verilog, tmp_path):
    spec = {"params": TINY.to_dict(), "seed": 5, "stall_prob": 0.3, "cases": cases(5)}
    result = run_bench(sim=sim, verilog=[verilog], toplevel="rowstat_pe",
                       module="tb.bench_pe", spec=spec, work=tmp_path)
    assert len(result.cases) == len(spec["cases"]), f"bench did not finish; see {result.log}"
    for r in result.cases:
        assert r["match"], r
        assert r["counters"] == r["expected_counters"], r
    assert result.passed, f"cocotb reported a failure; see {result.log}"
