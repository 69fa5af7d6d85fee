"""cocotb bench: the whole accelerator runs a Program against the DRAM model.

Spec (JSON, from :func:`tb.layer_run.run_layer`): parameters, the packed descriptors, the DRAM
image, the output region and its expected words (from the golden model), DRAM latency and stall
probability, seed. The bench sends every descriptor, waits for the last pass, compares every
output word with the expected one, reads every counter, and writes a JSON result.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

from hw.top import TOP_COUNTERS
from tb.cocotb_streams import StreamSource
from tb.dram import DramModel


async def read_counters(dut) -> dict[str, int]:
    values = {}
    for i, name in enumerate(TOP_COUNTERS):
        await FallingEdge(dut.clk)
        dut.cnt_sel.value = i
        await ReadOnly()
        values[name] = dut.cnt_value.value.to_unsigned()
    return values


@cocotb.test()
async def run_program(dut):
    spec = json.loads(Path(os.environ["ROWSTAT_BENCH_SPEC"]).read_text())
    results_path = Path(os.environ["ROWSTAT_BENCH_RESULTS"])
    rng = random.Random(int(spec["seed"]))
    stall = float(spec["stall_prob"])
    progress_path = Path(spec["progress_path"]) if spec.get("progress_path") else None

    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.desc__valid.value = 0
    dut.cnt_sel.value = 0
    dram = DramModel(dut, dut.clk, words=spec["dram"], width=int(spec["dram_width"]),
                     read_latency=int(spec["dram_latency"]), rng=rng, stall_prob=stall)
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    dram.start()

    descriptors = [int(x) for x in spec["descriptors"]]
    source = StreamSource(dut, "desc", dut.clk, rng=rng, stall_prob=0.0).start(descriptors)
    limit = int(spec["cycle_limit"])
    cycles = 0
    progress_every = max(1, len(descriptors) // 20)
    last_report = -1
    while True:
        await RisingEdge(dut.clk)
        await ReadOnly()
        cycles += 1
        done = dut.passes_done.value.to_unsigned()
        if dut.error.value:
            break
        if source.done and done == len(descriptors) and not dut.busy.value:
            break
        if done // progress_every != last_report and done:
            last_report = done // progress_every
            dut._log.info(f"pass {done}/{len(descriptors)} after {cycles} cycles")
            if progress_path:
                progress_path.write_text(f"{done} {len(descriptors)} {cycles}\n")
        if cycles >= limit:
            break
    counters = await read_counters(dut)
    dram.stop()

    out_base, out_words = int(spec["out_base"]), int(spec["out_words"])
    got = dram.contents(out_base, out_words)
    expected = [int(x) for x in spec["expected"]]
    first_bad = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), None)
    result = {
        "finished": not dut.error.value and dut.passes_done.value.to_unsigned() == len(descriptors),
        "error": int(dut.error.value),
        "error_code": dut.error_code.value.to_unsigned(),
        "passes_done": dut.passes_done.value.to_unsigned(),
        "bench_cycles": cycles,
        "timeout": cycles >= limit,
        "counters": counters,
        "output": got,
        "match": first_bad is None and len(got) == len(expected),
        "first_bad_word": first_bad,
        "protocol_errors": dram.protocol_errors,
        "dram": dram.stats(),
    }
    results_path.write_text(json.dumps(result))
    assert not result["timeout"], f"accelerator did not finish within {limit} cycles"
    assert not result["error"], f"accelerator refused a descriptor: error code {result['error_code']}"
    assert not dram.protocol_errors, dram.protocol_errors[:3]
    assert result["match"], f"output word {first_bad} differs from the golden model"
