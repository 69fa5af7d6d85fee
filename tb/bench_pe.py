"""cocotb bench: the generated PE Verilog against the golden 1-D row primitive.

Run through :func:`tb.runner.run_pe_bench`, which hands this module a JSON spec (parameters,
cases, seed, stall probability) and reads back a JSON result per case. Every psum word and
every counter is compared with :mod:`tb.golden` / :mod:`tb.pe_vectors`.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from hw.params import from_dict
from hw.pe import PE_COUNTERS, pe_depths
from tb.cocotb_streams import StreamSink, StreamSource
from tb.pe_vectors import case_from_dict


def _counters(dut, width: int) -> dict[str, int]:
    bits = dut.counters.value.to_unsigned()
    mask = (1 << width) - 1
    return {name: (bits >> (i * width)) & mask for i, name in enumerate(PE_COUNTERS)}


@cocotb.test()
async def pe_cases(dut):
    spec = json.loads(Path(os.environ["ROWSTAT_BENCH_SPEC"]).read_text())
    params = from_dict(spec["params"])
    depths = pe_depths(params)
    stall = float(spec["stall_prob"])

    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.start.value = 0
    dut.psum_in__valid.value = 0
    dut.filter__valid.value = 0
    dut.ifmap__valid.value = 0
    dut.psum_out__ready.value = 0
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0

    results = []
    before = _counters(dut, params.counter_width)
    for n, cd in enumerate(spec["cases"]):
        case = case_from_dict(cd)
        rng = random.Random(int(spec["seed"]) * 7919 + n)
        kw = dict(rng=rng, stall_prob=stall)
        await RisingEdge(dut.clk)
        dut.cfg.value = case.cfg.pack(**depths)
        sink = StreamSink(dut, "psum_out", dut.clk, **kw).start()
        sources = [StreamSource(dut, "filter", dut.clk, **kw).start(case.filter_stream),
                   StreamSource(dut, "ifmap", dut.clk, **kw).start(case.ifmap_stream),
                   StreamSource(dut, "psum_in", dut.clk, **kw).start(case.psum_in_stream)]
        dut.start.value = 1
        await RisingEdge(dut.clk)
        dut.start.value = 0
        limit = 1000 + 20 * (case.mac_slots + len(case.ifmap_stream)) / (1 - stall) ** 2
        cycles = 1
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            cycles += 1
            if not dut.busy.value:
                break
            assert cycles < limit, f"case {n} ({case.describe()}): PE still busy after {cycles}"
        await RisingEdge(dut.clk)
        for s in sources:
            s.stop()
        sink.stop()

        expected = case.expected_stream
        got = sink.words
        first_bad = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), None)
        after = _counters(dut, params.counter_width)
        counters = {k: after[k] - before[k] for k in PE_COUNTERS}
        before = after
        results.append({
            "case": case.describe(), "words": len(expected), "received": len(got),
            "match": first_bad is None and len(got) == len(expected),
            "first_mismatch": None if first_bad is None else
            {"index": first_bad, "got": got[first_bad], "expected": expected[first_bad]},
            "counters": counters, "expected_counters": case.expected_counters(),
            "cycles": cycles, "mac_slots": case.mac_slots,
        })

    Path(os.environ["ROWSTAT_BENCH_RESULTS"]).write_text(json.dumps(results, indent=1))
    for r in results:
        assert r["match"], f"{r['case']}: {r['received']}/{r['words']} words, " \
                           f"first mismatch {r['first_mismatch']}"
        assert r["counters"] == r["expected_counters"], \
            f"{r['case']}: counters {r['counters']} != expected {r['expected_counters']}"
