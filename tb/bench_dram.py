"""cocotb bench: :class:`tb.dram.DramModel` against test-only DMA masters.

Run through :func:`tb.runner.run_bench` with a JSON spec; one result per phase is written back.

``"kind": "copy"`` (top :class:`tb.dma_exerciser.DmaExerciser`): each phase runs its copy
commands (all offered at once, or one after the other with ``"sequential": true``) against a
fresh model (the phase's ``stall_prob`` and ``read_latency``) whose source ranges hold random
words, then checks that every destination word equals its source word, that every source word
was read once and every destination word written once (nothing else touched), that the
exerciser's ``busy`` fell, and that no protocol error occurred. It records the cycles from each
command's handshake to its last write beat (model cycle numbers) and the model's request log.

``"kind": "protocol"`` (top :class:`tb.dma_exerciser.DmaStub`): the bench plays the DMA master
itself, breaks the protocol on purpose (len = 0 requests, a write beat with no request) between
well-formed transfers (one reading past the initialised words), and reports what the model
recorded and in which cycles the read beats appeared on the wires.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import cocotb
from amaranth.hdl import Const
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

from hw.descriptor import ADDR_BITS
from tb.cocotb_streams import StreamSource
from tb.dma_exerciser import copy_command_layout
from tb.dram import DramModel


def _spec() -> dict:
    return json.loads(Path(os.environ["ROWSTAT_BENCH_SPEC"]).read_text())


def _write_results(results: list[dict]):
    Path(os.environ["ROWSTAT_BENCH_RESULTS"]).write_text(json.dumps(results, indent=1))


async def _reset(dut, inputs: list):
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    for signal in inputs:
        signal.value = 0
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


def _pack_command(cmd: dict) -> int:
    layout = copy_command_layout()
    return Const.cast(layout.const({k: cmd[k] for k in ("src", "dst", "len")})).value


async def _watch_commands(dut, model: DramModel, cycles: list[int]):
    """Append the model cycle of every ``cmd`` handshake."""
    while True:
        await FallingEdge(dut.clk)
        await ReadOnly()
        if dut.cmd__valid.value == 1 and dut.cmd__ready.value == 1:
            cycles.append(model.cycle)


async def _copy_phase(dut, phase: dict, *, width: int, seed: int) -> dict:
    commands = phase["commands"]
    stall = float(phase["stall_prob"])
    latency = int(phase["read_latency"])
    rng = random.Random(seed)
    words = {}
    for c in commands:
        for a in range(c["src"], c["src"] + c["len"]):
            words[a] = rng.getrandbits(width)
    model = DramModel(dut, dut.clk, words=words, width=width, read_latency=latency,
                      rng=random.Random(seed + 1), stall_prob=stall).start()
    handshakes: list[int] = []
    watcher = cocotb.start_soon(_watch_commands(dut, model, handshakes))
    source = StreamSource(dut, "cmd", dut.clk, rng=random.Random(seed + 2), stall_prob=stall)
    packed = [_pack_command(c) for c in commands]
    # Pipelined: all commands offered at once; sequential: each once the previous one is done.
    batches = [[p] for p in packed] if phase.get("sequential") else [packed]

    total = sum(c["len"] for c in commands)
    limit = 200 + (4 * total + len(commands) * (3 * latency + 20)) / (1 - stall) ** 2
    waited = 0
    for batch in batches:
        source.start(batch)
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            waited += 1
            if source.done and model.idle and not dut.busy.value:
                break
            assert waited < limit, f"{phase['name']}: not done after {waited} cycles " \
                                   f"({model.writes}/{total} words written)"
        await FallingEdge(dut.clk)
    source.stop()
    watcher.cancel()
    model.stop()

    expected_reads = {a: 1 for c in commands for a in range(c["src"], c["src"] + c["len"])}
    expected_writes = {a: 1 for c in commands for a in range(c["dst"], c["dst"] + c["len"])}
    mismatches = [
        {"dst": c["dst"] + i, "got": model.memory.get(c["dst"] + i),
         "expected": words[c["src"] + i]}
        for c in commands for i in range(c["len"])
        if model.memory.get(c["dst"] + i) != words[c["src"] + i]
    ]
    per_command = []
    for c, issued in zip(commands, handshakes):
        lo, hi = c["dst"], c["dst"] + c["len"]
        done = max(r.done for r in model.write_requests if lo <= r.addr < hi)
        per_command.append({**c, "handshake": issued, "last_write": done,
                            "cycles": done - issued})
    log = [{"kind": r.kind, "addr": r.addr, "len": r.len, "issue": r.issue, "first": r.first,
            "done": r.done} for r in model.requests]
    return {
        "name": phase["name"], "stall_prob": stall, "read_latency": latency,
        "commands": len(commands), "words": total,
        "handshakes": len(handshakes),
        "data_match": not mismatches, "mismatches": mismatches[:8],
        "reads_once": dict(model.read_counts) == expected_reads,
        "writes_once": dict(model.write_counts) == expected_writes,
        "max_write_burst": max((r.len for r in model.write_requests), default=0),
        "protocol_errors": model.protocol_errors,
        "uninitialised_reads": len(model.uninitialised_reads),
        "cycles": (max(p["last_write"] for p in per_command) - per_command[0]["handshake"])
        if per_command else 0,
        "per_command": per_command, "requests": log, "model": model.stats(),
    }


@cocotb.test()
async def dram_bench(dut):
    spec = _spec()
    kind = spec["kind"]
    width, seed = int(spec["width"]), int(spec["seed"])
    if kind == "copy":
        await _reset(dut, [dut.cmd__valid, dut.rd_req__ready, dut.rd_data__valid,
                           dut.wr_req__ready, dut.wr_data__ready])
        results = []
        for n, phase in enumerate(spec["phases"]):
            results.append(await _copy_phase(dut, phase, width=width,
                                             seed=seed * 1000 + 10 * n))
        _write_results(results)
        for r in results:
            assert r["data_match"], f"{r['name']}: destination differs: {r['mismatches']}"
            assert r["reads_once"] and r["writes_once"], f"{r['name']}: words not read/written " \
                                                         f"exactly once"
            assert not r["protocol_errors"], f"{r['name']}: {r['protocol_errors']}"
            assert r["handshakes"] == r["commands"], f"{r['name']}: commands lost"
    elif kind == "protocol":
        results = [await _protocol(dut, width=width, latency=int(spec["read_latency"]))]
        _write_results(results)
    else:
        raise ValueError(f"spec kind = {kind!r} is invalid: allowed copy, protocol")


# ---- protocol checks on DmaStub ------------------------------------------------------------
def _request(addr: int, length: int) -> int:
    return addr | length << ADDR_BITS


async def _protocol(dut, *, width: int, latency: int) -> dict:
    """Drive the stub cycle by cycle: (name, rd_req, wr_req, wr_data) per cycle, None = idle."""
    await _reset(dut, [dut.drive_rd_req__valid, dut.drive_wr_req__valid,
                       dut.drive_wr_data__valid, dut.drive_rd_data__ready,
                       dut.rd_req__ready, dut.rd_data__valid, dut.wr_req__ready,
                       dut.wr_data__ready])
    init = [0x1111 * (i + 1) for i in range(8)]
    model = DramModel(dut, dut.clk, words=init, width=width, read_latency=latency).start()
    script = [
        ("read len 0", _request(4, 0), None, None),
        ("lone write beat", None, None, 0xAB),
        ("read 3 words", _request(2, 3), None, None),
        ("write 2 words, beat with request", None, _request(100, 2), 0xC0),
        ("second beat", None, None, 0xC1),
        ("write len 0", None, _request(200, 0), None),
        ("read past the initialised words", _request(7, 2), None, None),
    ]
    offsets = set()             # stub cycle counter minus model cycle, seen at every cycle
    read_issue = None           # stub cycle of the good read's handshake
    beats = []                  # (stub cycle, word) of read beats seen on drive_rd_data
    dut.drive_rd_data__ready.value = 1
    for step in range(len(script) + 3 * latency + 8):
        await FallingEdge(dut.clk)
        name, rd, wr, wd = script[step] if step < len(script) else (None, None, None, None)
        for prefix, value in (("rd_req", rd), ("wr_req", wr), ("wr_data", wd)):
            getattr(dut, f"drive_{prefix}__valid").value = int(value is not None)
            if value is not None:
                getattr(dut, f"drive_{prefix}__payload").value = value
        await ReadOnly()
        now = dut.cycle.value.to_unsigned()
        offsets.add(now - model.cycle)
        if name == "read 3 words":
            read_issue = now
        if dut.drive_rd_data__valid.value:
            beats.append((now, dut.drive_rd_data__payload.value.to_unsigned()))
        await RisingEdge(dut.clk)
    await model.wait_idle(timeout_cycles=1)     # every well-formed transfer is complete
    model.stop()
    return {
        "name": "protocol", "protocol_errors": model.protocol_errors,
        "cycle_offsets": sorted(offsets),
        "first_beat_after": beats[0][0] - read_issue if beats else None,
        "beat_cycles": [c - read_issue for c, _ in beats],
        "read_words": [w for _, w in beats], "expected_read_words": init[2:5] + [init[7], 0],
        "uninitialised_reads": model.uninitialised_reads,
        "written": model.contents(100, 2), "expected_written": [0xC0, 0xC1],
        "requests": [{"kind": r.kind, "addr": r.addr, "len": r.len, "issue": r.issue,
                      "first": r.first, "done": r.done} for r in model.requests],
    }
