"""A five-layer network in one program on the RTL: each layer reads the previous one's output
from DRAM (its first pass waits for the previous layer's write-back), every layer's ofmap is
compared with the golden model, counters with the model."""

import pytest

from gen.run import TIMING, run_network
from gen.workload import NETWORKS
from hw.params import PRESETS


@pytest.mark.parametrize("sim, stall", [("verilator", 0.0), ("icarus", 0.3)],
                         ids=["verilator-nominal", "icarus-stalls"])
def test_alexnet_mini_chain(sim, stall):
    r = run_network(PRESETS["tiny"], list(NETWORKS["alexnet-mini"]), sim=sim, seed=3,
                    stall_prob=stall)
    assert [row["match"] for row in r["layers"]] == [True] * 5, r["layers"]
    # calibrated shifts keep every layer's output alive (not all zeros, not all saturated)
    assert all(0.2 < row["output_zero_fraction"] < 0.9 for row in r["layers"]), r["layers"]
    assert r["counters_match_model"], r["counter_diffs"]
    rtl, model = r["rtl_counters"], r["model_counters"]
    if stall == 0.0:
        assert {k: rtl[k] for k in TIMING} == {k: model[k] for k in TIMING}
    else:
        own = rtl["cycles"] - rtl["dma_stall_cycles"] - rtl["dram_wr_stall"]
        assert own == model["cycles"] - model["dma_stall_cycles"] - model["dram_wr_stall"]


def test_row_index_of_several_words():
    """A 32-bit DRAM port (and RLC words): a row index word holds two rows' ends, so a pass of
    four columns writes its index in two beats and reads it back in the next layer. Icarus,
    two layers with DRAM stalls; a wrong index word decodes the next layer's input wrongly."""
    params = PRESETS["tiny"].replace(name="tiny_w32", dram_width=32, rlc_word_bits=32)
    r = run_network(params, list(NETWORKS["alexnet-mini"])[2:4], sim="icarus", seed=3,
                    stall_prob=0.3)
    assert [row["match"] for row in r["layers"]] == [True, True], r["layers"]
    assert r["counters_match_model"], r["counter_diffs"]
