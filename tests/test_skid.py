"""hw/skid.py: every word through once, in order, under random stalls on both sides; the
upstream ready does not follow the downstream ready within a cycle; and a word crosses in
the cycle it is offered while the downstream side is ready."""

import random

import pytest
from amaranth.hdl import signed
from amaranth.sim import Simulator

from hw.skid import SkidBuffer
from tb.sim_streams import stream_get, stream_put


@pytest.mark.parametrize("seed", range(4))
def test_skid_buffer_under_random_stalls(seed):
    rng = random.Random(seed)
    words = [rng.randrange(-(1 << 23), 1 << 23) for _ in range(300)]
    dut = SkidBuffer(signed(24))
    got = []

    async def producer(ctx):
        await stream_put(ctx, dut.i, words, rng=rng, stall_prob=0.3)

    async def consumer(ctx):
        got.extend(await stream_get(ctx, dut.o, len(words), rng=rng, stall_prob=0.5))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run_until(1e-8 * 20_000)          # a lost word ends the test here, not in a hang
    assert [w if w < 1 << 23 else w - (1 << 24) for w in got] == words


def test_skid_buffer_ready_and_pass_through():
    dut = SkidBuffer(signed(8))

    async def bench(ctx):
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, 5)
        ctx.set(dut.o.ready, 1)
        assert ctx.get(dut.o.valid) and ctx.get(dut.o.payload) == 5    # same cycle
        assert ctx.get(dut.i.ready)
        ctx.set(dut.o.ready, 0)
        assert ctx.get(dut.i.ready)            # not a function of o.ready
        await ctx.tick()                       # 5 is kept
        ctx.set(dut.i.payload, 6)
        assert not ctx.get(dut.i.ready)
        assert ctx.get(dut.o.valid) and ctx.get(dut.o.payload) == 5
        ctx.set(dut.o.ready, 1)
        assert not ctx.get(dut.i.ready)
        await ctx.tick()                       # 5 leaves; 6 waited
        assert ctx.get(dut.i.ready)
        assert ctx.get(dut.o.payload) == 6
        await ctx.tick()                       # 6 leaves
        ctx.set(dut.i.valid, 0)
        assert not ctx.get(dut.o.valid)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
