"""The PE against the golden 1-D row primitive, in amaranth.sim, with random stalls."""

import dataclasses
import random

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.sim import Simulator

from hw.params import PRESETS
from hw.pe import MODE_OS, MODE_RS, MODE_WS, PE, PE_COUNTERS, PERowConfig
from tb.pe_vectors import extreme_case, make_case, random_config
from tb.sim_streams import stream_get, stream_put


def simulate(pe: PE, case, *, seed: int = 0, stall_prob: float = 0.0, timeout: int = 200_000):
    """Run one pass; returns (psum words out, counters, cycles from start to idle)."""
    rng = random.Random(seed)
    got, counters, cycles = [], {}, [0]
    n_out = len(case.expected_stream)

    async def control(ctx):
        ctx.set(pe.cfg.as_value(), pe.pack_config(case.cfg))
        await ctx.tick()
        ctx.set(pe.start, 1)
        await ctx.tick()
        ctx.set(pe.start, 0)
        n = 1
        while ctx.get(pe.busy):
            await ctx.tick()
            n += 1
            assert n < timeout, "PE hung"
        cycles[0] = n
        for name in PE_COUNTERS:
            counters[name] = ctx.get(pe.counters[name])

    async def filters(ctx):
        await stream_put(ctx, pe.filter, case.filter_stream, rng=rng, stall_prob=stall_prob)

    async def ifmaps(ctx):
        await stream_put(ctx, pe.ifmap, case.ifmap_stream, rng=rng, stall_prob=stall_prob)

    async def psums_in(ctx):
        await stream_put(ctx, pe.psum_in, case.psum_in_stream, rng=rng, stall_prob=stall_prob)

    async def psums_out(ctx):
        got.extend(await stream_get(ctx, pe.psum_out, n_out, rng=rng, stall_prob=stall_prob))

    sim = Simulator(pe)
    sim.add_clock(1e-8)
    sim.add_testbench(control)
    sim.add_testbench(filters, background=True)
    sim.add_testbench(ifmaps, background=True)
    sim.add_testbench(psums_in, background=True)
    sim.add_testbench(psums_out)
    sim.run()
    return got, counters, cycles[0]


def check(pe, case, **kw):
    got, counters, cycles = simulate(pe, case, **kw)
    expected = case.expected_stream
    assert len(got) == len(expected)
    bad = [i for i, (a, b) in enumerate(zip(got, expected)) if a != b]
    assert not bad, f"{case.describe()}: first mismatch at word {bad[0]}: " \
                    f"got {got[bad[0]]}, expected {expected[bad[0]]}"
    assert counters == case.expected_counters(), case.describe()
    return cycles


TINY = PRESETS["tiny"]


@pytest.fixture(scope="module")
def tiny_pe():
    return PE.from_params(TINY)


@pytest.mark.parametrize("seed", range(24))
def test_random_configs_with_stalls(tiny_pe, seed):
    rng = np.random.default_rng(1000 + seed)
    cfg = random_config(rng, ifmap_depth=TINY.ifmap_spad_depth,
                        filter_depth=TINY.filter_spad_depth, psum_depth=TINY.psum_spad_depth)
    zero_fraction = [0.0, 0.3, 0.8, 1.0][seed % 4]
    case = make_case(rng, cfg, data_width=TINY.data_width, psum_width=TINY.psum_width,
                     zero_fraction=zero_fraction)
    check(tiny_pe, case, seed=seed, stall_prob=[0.0, 0.3, 0.6][seed % 3])


@pytest.mark.parametrize("cfg", [
    PERowConfig(taps=3, channels=4, filters=2, stride=1, width=9, rows=2, psum_in=True),
    PERowConfig(taps=1, channels=1, filters=1, stride=2, width=7),
    PERowConfig(taps=12, channels=1, filters=2, stride=1, width=14, psum_in=True),
], ids=["q4S3", "1x1-stride2", "S12"])
def test_extreme_values_wrap_like_the_psum_register(tiny_pe, cfg):
    case = extreme_case(cfg, data_width=TINY.data_width, psum_width=TINY.psum_width)
    check(tiny_pe, case, seed=1, stall_prob=0.2)


def test_no_stall_schedule_keeps_the_mac_busy(tiny_pe):
    """With free-running streams and room in the ring, the MAC issues every cycle after fill."""
    cfg = PERowConfig(taps=3, channels=2, filters=4, stride=1, width=16, rows=2)
    rng = np.random.default_rng(7)
    case = make_case(rng, cfg, data_width=8, psum_width=TINY.psum_width)
    cycles = check(tiny_pe, case)
    load = cfg.filters * cfg.channels * cfg.taps
    # start + filter load + window fill + MAC slots + pipeline tail; nothing else.
    assert cycles <= load + case.mac_slots + cfg.rows * cfg.channels * cfg.taps + 8, cycles


def test_eyeriss_pe_alexnet_conv3_row():
    """The eyeriss PE with the AlexNet CONV3-like folding: p=16, q=4, S=3 over a 15-wide row."""
    params = PRESETS["eyeriss"]
    pe = PE.from_params(params)
    cfg = PERowConfig(taps=3, channels=4, filters=16, stride=1, width=15, psum_in=True)
    rng = np.random.default_rng(3)
    case = make_case(rng, cfg, data_width=16, psum_width=params.psum_width, zero_fraction=0.7)
    check(pe, case, seed=3, stall_prob=0.25)


def test_config_outside_the_scratchpads_is_rejected(tiny_pe):
    with pytest.raises(ValueError, match=r"filters x channels x taps = 48 .* allowed 1\.\.32"):
        tiny_pe.pack_config(PERowConfig(taps=3, channels=4, filters=4, width=8))
    with pytest.raises(ValueError, match=r"taps = 4 .* allowed 1\.\.3"):
        tiny_pe.pack_config(PERowConfig(taps=4, channels=4, filters=1, width=8))
    with pytest.raises(ValueError, match=r"width = 2 .* allowed 3\.\."):
        tiny_pe.pack_config(PERowConfig(taps=3, channels=1, filters=1, width=2))


class _Twins(Elaboratable):
    """Two PEs built alike but for ``registered_ready``, their inputs tied together."""

    def __init__(self, params, **kwargs):
        self.plain = PE.from_params(params, **kwargs)
        self.regd = PE.from_params(params, registered_ready=True, **kwargs)

    def elaborate(self, platform):
        m = Module()
        m.submodules.plain, m.submodules.regd = self.plain, self.regd
        return m


def _outputs(ctx, pe):
    out = [ctx.get(pe.busy), ctx.get(pe.ifmap.ready), ctx.get(pe.filter.ready),
           ctx.get(pe.psum_in.ready), ctx.get(pe.psum_out.valid), ctx.get(pe.can_issue),
           ctx.get(pe.product_valid), ctx.get(pe.events.as_value())]
    if out[4]:
        out.append(ctx.get(pe.psum_out.payload))
    if out[6]:
        out.append(ctx.get(pe.product))
    return out


@pytest.mark.parametrize("mode", [MODE_RS, MODE_WS, MODE_OS], ids=["rs", "ws", "os"])
@pytest.mark.parametrize("seed", range(6))
def test_registered_ready_is_the_same_pe_cycle_for_cycle(mode, seed):
    """``registered_ready`` computes the ifmap and filter ``ready`` and ``can_issue`` a cycle
    ahead; under random inputs (valid, ready, go, data, a second start) both PEs must show
    the same outputs in every cycle, and ``can_next`` must be the next cycle's ``can_issue``
    (never higher, and lower only after a cycle that took an ifmap or filter word)."""
    rng = np.random.default_rng(500 + seed)
    r = random.Random(seed)
    # a one-word output FIFO (odd seeds) fills often: slots stall, then resume on a pop
    twins = _Twins(TINY, **({"out_fifo_depth": 1} if seed % 2 else {}))
    depths = dict(ifmap_depth=TINY.ifmap_spad_depth, filter_depth=TINY.filter_spad_depth,
                  psum_depth=TINY.psum_spad_depth)
    cfgs = [dataclasses.replace(random_config(rng, **depths, max_width=14), mode=mode)
            for _ in range(2)]
    if mode == MODE_OS:     # the filters of one output must fit with their psums
        cfgs = [c if c.filters <= TINY.psum_spad_depth else dataclasses.replace(c, filters=1)
                for c in cfgs]
    prob = r.choice([0.3, 0.7, 1.0])
    cycles = [0]

    async def bench(ctx):
        for cfg in cfgs:
            active = r.random() < 0.8          # (an inactive PE always lets the array issue)
            for pe in (twins.plain, twins.regd):
                ctx.set(pe.cfg.as_value(), pe.pack_config(cfg))
                ctx.set(pe.active, active)
            await ctx.tick()
            for pe in (twins.plain, twins.regd):
                ctx.set(pe.start, 1)
            busy_next = ctx.get(twins.regd.busy_next)
            await ctx.tick()
            for pe in (twins.plain, twins.regd):
                ctx.set(pe.start, 0)
            n = 0
            promise = None      # last cycle's ``can_next``; whether an ifmap or filter word came
            while ctx.get(twins.plain.busy) or ctx.get(twins.regd.busy):
                values = dict(fv=r.random() < prob, iv=r.random() < prob,
                              pv=r.random() < prob, pr=r.random() < prob / 2,
                              go=r.random() < prob,
                              fd=r.randrange(-100, 100), id=r.choice([0, 0, r.randrange(-99, 99)]),
                              pd=r.randrange(-1000, 1000))
                for pe in (twins.plain, twins.regd):
                    ctx.set(pe.filter.valid, values["fv"])
                    ctx.set(pe.filter.payload, values["fd"])
                    ctx.set(pe.ifmap.valid, values["iv"])
                    ctx.set(pe.ifmap.payload, values["id"])
                    ctx.set(pe.psum_in.valid, values["pv"])
                    ctx.set(pe.psum_in.payload, values["pd"])
                    ctx.set(pe.psum_out.ready, values["pr"])
                    ctx.set(pe.go, values["go"])
                a, b = _outputs(ctx, twins.plain), _outputs(ctx, twins.regd)
                assert a == b, f"cycle {n} of {cfg}: plain {a}, registered {b}"
                # last cycle's ``can_next`` promised this cycle's ``can_issue`` (the array's
                # lockstep relies on it) and is exact unless an ifmap or filter word was
                # taken then
                if promise is not None:
                    promised, took = promise
                    can = ctx.get(twins.plain.can_issue)
                    assert (promised <= can) if took else (promised == can), (
                        f"cycle {n} of {cfg}: can_next {promised} (a word taken: {took}), "
                        f"can_issue {can}")
                took = ctx.get(twins.regd.ifmap.valid) and ctx.get(twins.regd.ifmap.ready)
                f_took = ctx.get(twins.regd.filter.valid) and ctx.get(twins.regd.filter.ready)
                promise = (ctx.get(twins.regd.can_next), took or f_took)
                # last cycle's ``busy_next`` is this cycle's ``busy``
                assert b[0] == busy_next, f"cycle {n} of {cfg}: busy_next {busy_next}"
                busy_next = ctx.get(twins.regd.busy_next)
                await ctx.tick()
                n += 1
                assert n < 50_000, "PE hung"
            assert ctx.get(twins.regd.busy) == busy_next
            cycles[0] += n

    sim = Simulator(twins)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert cycles[0] > 20
