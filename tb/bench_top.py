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
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge, Timer

from hw.top import TOP_COUNTERS
from tb.dram import DramModel


async def read_counters(dut) -> dict[str, int]:
    values = {}
    for i, name in enumerate(TOP_COUNTERS):
        await FallingEdge(dut.clk)
        dut.cnt_sel.value = i
        await RisingEdge(dut.clk)         # the read port is registered
        await ReadOnly()
        values[name] = dut.cnt_value.value.to_unsigned()
    return values


async def feed(dut, descriptors):
    """Offer each descriptor; wait for the controller's ready edge instead of polling."""
    for word in descriptors:
        await FallingEdge(dut.clk)
        dut.desc__payload.value = word
        dut.desc__valid.value = 1
        await ReadOnly()
        if not dut.desc__ready.value:
            await RisingEdge(dut.desc__ready)
        await RisingEdge(dut.clk)           # the handshake
    await FallingEdge(dut.clk)
    dut.desc__valid.value = 0


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
                     read_latency=int(spec["dram_latency"]), rng=rng, stall_prob=stall,
                     word_interval=int(spec.get("dram_word_interval", 1)))
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    dram.start()

    descriptors = [int(x) for x in spec["descriptors"]]
    feeder = cocotb.start_soon(feed(dut, descriptors))
    limit = int(spec["cycle_limit"])
    # Poll the status every POLL cycles with one timer (per-cycle polling from Python would
    # cost more than the simulation); the cycle figures come from the RTL's own counters.
    poll, cycles, last_done = 256, 0, -1
    while True:
        await Timer(poll * 10, unit="ns")
        cycles += poll
        await ReadOnly()
        done = dut.passes_done.value.to_unsigned()
        if dut.error.value and not spec.get("through_errors"):
            break
        if feeder.done() and done == len(descriptors) and not dut.busy.value:
            break
        if done != last_done and progress_path:
            last_done = done
            progress_path.write_text(f"{done} {len(descriptors)} {cycles}\n")
        if cycles >= limit:
            break
    counters = await read_counters(dut)
    dram.stop()

    # Every checked region (one per layer of a network) is compared word for word.
    checks = spec.get("checks") or [{"base": spec["out_base"], "words": spec["out_words"],
                                     "expected": spec["expected"]}]
    regions = []
    for check in checks:
        got_r = dram.contents(int(check["base"]), int(check["words"]))
        exp_r = [int(x) for x in check["expected"]]
        bad_r = next((i for i, (a, b) in enumerate(zip(got_r, exp_r)) if a != b), None)
        regions.append({"output": got_r, "match": bad_r is None and len(got_r) == len(exp_r),
                        "first_bad_word": bad_r})
    got = regions[-1]["output"]
    first_bad = next((r["first_bad_word"] for r in regions if not r["match"]), None)
    result = {
        "finished": not dut.error.value and dut.passes_done.value.to_unsigned() == len(descriptors),
        "error": int(dut.error.value),
        "error_code": dut.error_code.value.to_unsigned(),
        "passes_done": dut.passes_done.value.to_unsigned(),
        "bench_cycles": cycles,
        "timeout": cycles >= limit,
        "counters": counters,
        "output": got,
        "regions": regions,
        "match": all(r["match"] for r in regions),
        "first_bad_word": first_bad,
        "protocol_errors": dram.protocol_errors,
        "dram": dram.stats(),
    }
    results_path.write_text(json.dumps(result))
    assert not result["timeout"], f"accelerator did not finish within {limit} cycles"
    assert not result["error"], f"accelerator refused a descriptor: error code {result['error_code']}"
    assert not dram.protocol_errors, dram.protocol_errors[:3]
    assert result["match"], f"output word {first_bad} differs from the golden model"
