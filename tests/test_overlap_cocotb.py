"""Double buffering on the RTL: with DRAM fast enough, the executor waits for DMA-in only while
the first pass loads (every later load hides behind the previous pass); with slow DRAM it waits
more. Counts from the RTL's counters, checked against the model."""

from gen.mapper import map_layer
from gen.perf import PerfConfig, timeline
from gen.program import pass_plan
from gen.run import run_layer
from gen.workload import parse_layer
from hw.params import PRESETS

TINY = PRESETS["tiny"]
LAYER = parse_layer("C=9,M=9,H=6,W=6,R=3,S=3,pad=1")


def test_dma_waits_only_for_the_first_load_when_dram_is_fast():
    first = pass_plan(map_layer(LAYER, TINY))[0][1]
    first_load = timeline([first], PerfConfig(), TINY)["dma_stall_cycles"]
    fast = run_layer(TINY, LAYER, sim="verilator", seed=1)
    assert fast["match"]
    c = fast["rtl_counters"]
    assert c["passes"] > 10 and c["overlap_cycles"] > 0
    assert c["dma_stall_cycles"] == first_load == fast["model_counters"]["dma_stall_cycles"]

    slow = run_layer(TINY, LAYER, sim="verilator", seed=1, dram_latency=400)
    assert slow["match"]
    s = slow["rtl_counters"]
    assert s["dma_stall_cycles"] > first_load + 10 * 300      # later loads show now
    assert s["dma_stall_cycles"] == slow["model_counters"]["dma_stall_cycles"]
    assert s["cycles"] == slow["model_counters"]["cycles"]
