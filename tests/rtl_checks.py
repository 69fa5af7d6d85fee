"""Shared assertions for whole-layer runs on the RTL (``gen.run.run_layer`` results)."""

from gen.run import TIMING


def assert_rtl_equals_model(r: dict, stall: float) -> None:
    """Every access count equals the model's, stalls or not. With nominal DRAM the model
    predicts every phase to the cycle. Under random latency and backpressure, every cycle the
    executor is not busy it waits for the loader (dma_stall_cycles) and when busy it only ever
    waits for DRAM in the write-back (dram_wr_stall): what remains is the executor's own work,
    which the model predicts to the cycle."""
    assert r["counters_match_model"], r["counter_diffs"]
    rtl, model = r["rtl_counters"], r["model_counters"]
    if stall == 0.0:
        assert {k: rtl[k] for k in TIMING} == {k: model[k] for k in TIMING}
    else:
        assert rtl["dram_rd_stall"] > model["dram_rd_stall"]
        own = rtl["cycles"] - rtl["dma_stall_cycles"] - rtl["dram_wr_stall"]
        model_own = model["cycles"] - model["dma_stall_cycles"] - model["dram_wr_stall"]
        assert own == model_own, (own, model_own)
