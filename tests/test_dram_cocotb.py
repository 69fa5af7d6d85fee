"""The DRAM model (tb/dram.py) against the test-only DMA exerciser on Verilator and Icarus:
copies under nominal timing and under random stalls, the nominal timing formula checked to the
cycle, and the model's protocol-error checks driven through a stub."""

import contextlib
import fcntl
import os
import random

import pytest
from amaranth.back import verilog

from tb.dma_exerciser import MAX_BURST, DmaExerciser, DmaStub, copy_cycles
from tb.runner import SIMULATORS, run_bench

WIDTH = 64
LATENCY = 16
SINGLE = {"src": 0x40, "dst": 0x9000, "len": 40}


def _copies(lengths: list[int], rng: random.Random) -> list[dict]:
    """Copies of the given lengths between disjoint source and destination ranges."""
    commands, src, dst = [], 0x1000, 0x20000
    for n in lengths:
        commands.append({"src": src, "dst": dst, "len": n})
        src += n + rng.randint(0, 5)
        dst += n + rng.randint(0, 5)
    return commands


def _batch(seed: int = 3) -> list[dict]:
    """Burst-edge lengths and random ones, the last copy ending exactly at the top of the
    32-bit address space."""
    rng = random.Random(seed)
    commands = _copies([1, 16, 17, 33, 2] + [rng.randint(1, 60) for _ in range(7)], rng)
    return commands + [{"src": commands[-1]["src"] + 64, "dst": (1 << 32) - 9, "len": 9}]


def _short_copies(seed: int = 5) -> list[dict]:
    """Many short copies: each starts with an idle write engine, where read data could catch
    up with a write request held back by stalls."""
    rng = random.Random(seed)
    return _copies([rng.randint(1, 6) for _ in range(80)] + [16, 17, 40], rng)


@pytest.fixture(scope="session")
def shared(tmp_path_factory):
    """A directory every pytest-xdist worker of this session shares.

    A Verilator build of even this small top takes 10-30 s on two busy cores (make compiles the
    Verilator and cocotb run-time serially); the four copy runs share one build per simulator
    instead of paying for it on each worker (see :func:`_exclusive`).
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    path = base / "dram_cocotb"
    path.mkdir(exist_ok=True)
    return path


@contextlib.contextmanager
def _exclusive(lock_path):
    """Hold an exclusive lock on ``lock_path`` (one build directory used by one run at once)."""
    with open(lock_path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def tops(shared):
    files = {}
    for name, top in (("dma_exerciser", DmaExerciser(dram_width=WIDTH)),
                      ("dma_stub", DmaStub(dram_width=WIDTH))):
        text = verilog.convert(top, name=name, emit_src=False)
        path = shared / f"{name}.v"
        with _exclusive(shared / f"{name}.v.lock"):
            # Rewriting identical Verilog would only make the simulators rebuild.
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
        files[name] = path
    return files


def _check_copies(phase: dict):
    name = phase["name"]
    assert phase["handshakes"] == phase["commands"], name
    assert phase["data_match"], (name, phase["mismatches"])
    assert phase["reads_once"], f"{name}: a source word was not read exactly once"
    assert phase["writes_once"], f"{name}: a destination word was not written exactly once"
    assert phase["protocol_errors"] == [], name
    assert phase["uninitialised_reads"] == 0, name
    assert 0 < phase["max_write_burst"] <= MAX_BURST, name


@pytest.mark.parametrize("stall_prob", [0.0, 0.4], ids=["nominal", "stalls"])
@pytest.mark.parametrize("sim", SIMULATORS)
def test_dram_model_with_exerciser(sim, stall_prob, tops, shared):
    def phase(name, commands, stall=stall_prob, latency=LATENCY):
        return {"name": name, "stall_prob": stall, "read_latency": latency,
                "commands": commands}

    phases = [phase("single", [SINGLE]), phase("batch", _batch()),
              phase("single, latency 1", [SINGLE], latency=1),
              phase("batch, latency 1", _batch(seed=4), latency=1),
              {**phase("sequential, latency 1", _short_copies(), latency=1), "sequential": True}]
    if stall_prob:
        phases.append(phase("batch nominal", _batch(), stall=0.0))
    spec = {"kind": "copy", "width": WIDTH, "seed": 11, "phases": phases}
    with _exclusive(shared / f"copy-{sim}.lock"):
        res = run_bench(sim=sim, verilog=[tops["dma_exerciser"]], toplevel="dma_exerciser",
                   module="tb.bench_dram", spec=spec, work=shared / "copy")
    assert len(res.cases) == len(phases), f"bench stopped early; see {res.log}"
    for case in res.cases:
        _check_copies(case)
    assert res.passed, f"cocotb reported a failure; see {res.log}"
    single, batch, single_1, _, sequential = res.cases[:5]
    n = SINGLE["len"]
    if stall_prob == 0:
        # The documented nominal timing, to the cycle.
        assert single["cycles"] == copy_cycles(n, LATENCY) == LATENCY + n + 1
        assert single_1["cycles"] == copy_cycles(n, 1)
        assert [c["cycles"] for c in sequential["per_command"]] == \
            [copy_cycles(c["len"], 1) for c in sequential["per_command"]]
        (read,) = [r for r in single["requests"] if r["kind"] == "read"]
        assert read["first"] - read["issue"] == LATENCY
        assert read["done"] - read["issue"] == LATENCY + n - 1
        writes = [r for r in single["requests"] if r["kind"] == "write"]
        assert [(w["addr"], w["len"]) for w in writes] == [(0x9000, 16), (0x9010, 16),
                                                           (0x9020, 8)]
    else:
        assert single["cycles"] > copy_cycles(n, LATENCY)
        assert single_1["cycles"] > copy_cycles(n, 1)
        assert batch["cycles"] > res.cases[-1]["cycles"]


def test_dram_model_flags_protocol_errors(tops, shared):
    spec = {"kind": "protocol", "width": WIDTH, "read_latency": 3, "seed": 0}
    with _exclusive(shared / "protocol-icarus.lock"):
        res = run_bench(sim="icarus", verilog=[tops["dma_stub"]], toplevel="dma_stub",
                   module="tb.bench_dram", spec=spec, work=shared / "protocol")
    assert res.passed, f"cocotb reported a failure; see {res.log}"
    (r,) = res.cases
    errors = r["protocol_errors"]
    assert len(errors) == 3, errors
    assert "read request at 0x4 with len = 0" in errors[0]
    assert "write beat 0xab with no write request pending" in errors[1]
    assert "write request at 0xc8 with len = 0" in errors[2]
    # The well-formed transfers around them went through, on the nominal timing.
    assert len(r["cycle_offsets"]) == 1, "model cycles drift from the hardware's"
    assert r["read_words"] == r["expected_read_words"]
    # Read latency 3 from the first read's handshake; the second read (4 cycles later) follows
    # its own latency, not the first read's last beat.
    assert r["beat_cycles"] == [3, 4, 5, 7, 8]
    assert r["uninitialised_reads"] == [8]
    assert r["written"] == r["expected_written"]
    assert [(q["kind"], q["addr"], q["len"]) for q in r["requests"]] == [
        ("read", 2, 3), ("write", 100, 2), ("read", 7, 2)]
