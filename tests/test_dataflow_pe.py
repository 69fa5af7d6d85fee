"""The PE's WS and OS modes in amaranth.sim, against the golden 1-D row primitive.

WS: every MAC slot's product leaves on ``product`` in the PE's slot order (for x: for k: for f)
and only while ``go`` is high (driven at random here, as the array's lockstep would); nothing
touches the psum scratchpad. OS: the PE reloads its filters before every output column but the
first, takes ifmap words meanwhile, issues only under ``go`` (lockstep, as in WS), and its
psums equal RS's."""

import dataclasses
import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.params import PRESETS
from hw.pe import MODE_OS, MODE_WS, PE, PE_COUNTERS, PERowConfig
from tb.pe_vectors import make_case
from tb.sim_streams import stream_get, stream_put

TINY = PRESETS["tiny"]


@pytest.fixture(scope="module")
def tiny_pe():
    return PE.from_params(TINY)


def _run(pe, cfg, filter_stream, case, *, seed, stall_prob, go_prob=1.0, n_out=0,
         timeout=100_000):
    """One pass; returns (psums out, products [(cycle, value)], counters)."""
    rng = random.Random(seed)
    got, products, counters = [], [], {}

    async def control(ctx):
        ctx.set(pe.cfg.as_value(), pe.pack_config(cfg))
        await ctx.tick()
        ctx.set(pe.start, 1)
        await ctx.tick()
        ctx.set(pe.start, 0)
        n = 0
        while ctx.get(pe.busy):
            ctx.set(pe.go, rng.random() < go_prob)
            await ctx.tick()
            if ctx.get(pe.product_valid):
                products.append(ctx.get(pe.product))
            n += 1
            assert n < timeout, "PE hung"
        for name in PE_COUNTERS:
            counters[name] = ctx.get(pe.counters[name])

    async def filters(ctx):
        await stream_put(ctx, pe.filter, filter_stream, rng=rng, stall_prob=stall_prob)

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
    return got, products, counters


def _slot_products(case):
    """Every slot's product in issue order: for row: for x: for k = s*q + c: for f."""
    c = case.cfg
    out = []
    for r in range(c.rows):
        for x in range(c.out_width):
            for s in range(c.taps):
                for ch in range(c.channels):
                    v = int(case.ifmaps[r, ch, x * c.stride + s])
                    out += [int(case.filters[f, ch, s]) * v for f in range(c.filters)]
    return out


WS_CONFIGS = [
    PERowConfig(taps=3, channels=2, filters=3, stride=1, width=9, mode=MODE_WS),
    # more filters than the psum scratchpad holds: WS keeps no psums in the PE
    PERowConfig(taps=1, channels=1, filters=TINY.psum_spad_depth + 3, stride=2, width=7,
                mode=MODE_WS),
    PERowConfig(taps=2, channels=3, filters=2, stride=3, width=11, rows=2, mode=MODE_WS),
    PERowConfig(taps=4, channels=3, filters=1, stride=1, width=6, mode=MODE_WS),
]


@pytest.mark.parametrize("cfg", WS_CONFIGS, ids=["q2S3", "p-beyond-psum-spad", "stride3-rows2",
                                                  "p1"])
def test_ws_products_leave_in_slot_order(tiny_pe, cfg):
    rng = np.random.default_rng(cfg.filters * 7 + cfg.taps)
    case = make_case(rng, dataclasses.replace(cfg, mode=0), data_width=8,
                     psum_width=TINY.psum_width, zero_fraction=0.3)
    _, products, counters = _run(tiny_pe, cfg, case.filter_stream, case, seed=cfg.taps,
                                 stall_prob=0.3, go_prob=0.6)
    assert products == _slot_products(case)
    # the products of one output, summed, are the golden psums
    c = cfg
    sums = np.array(products).reshape(c.rows, c.out_width, c.channels * c.taps, c.filters)
    assert (sums.sum(axis=2).transpose(0, 2, 1) == case.expected).all()
    want = case.expected_counters()
    want.update(psum_reads=0, psum_writes=0)   # WS holds no psum in the PE
    assert counters == want


def test_ws_go_low_holds_every_slot(tiny_pe):
    """Without ``go`` nothing issues; the PE only fills its window."""
    cfg = PERowConfig(taps=2, channels=1, filters=2, stride=1, width=5, mode=MODE_WS)
    case = make_case(np.random.default_rng(1), dataclasses.replace(cfg, mode=0), data_width=8,
                     psum_width=TINY.psum_width)
    with pytest.raises(AssertionError, match="PE hung"):
        _run(tiny_pe, cfg, case.filter_stream, case, seed=0, stall_prob=0.0, go_prob=0.0,
             timeout=300)


OS_CONFIGS = [
    PERowConfig(taps=3, channels=3, filters=2, stride=1, width=8, mode=MODE_OS),
    PERowConfig(taps=2, channels=2, filters=4, stride=2, width=9, psum_in=True, mode=MODE_OS),
    PERowConfig(taps=1, channels=1, filters=3, stride=1, width=6, rows=2, mode=MODE_OS),
    PERowConfig(taps=4, channels=3, filters=1, stride=3, width=10, mode=MODE_OS),
]


@pytest.mark.parametrize("cfg", OS_CONFIGS, ids=["q3S3", "stride2-psum-in", "1x1-rows2",
                                                  "S4-stride3"])
def test_os_reloads_filters_for_every_output(tiny_pe, cfg):
    rng = np.random.default_rng(cfg.channels * 11 + cfg.stride)
    case = make_case(rng, dataclasses.replace(cfg, mode=0), data_width=8,
                     psum_width=TINY.psum_width, zero_fraction=0.3)
    loads = 1 + cfg.rows * (cfg.out_width - 1)
    got, _, counters = _run(tiny_pe, cfg, case.filter_stream * loads, case, seed=cfg.taps,
                            stall_prob=0.3, go_prob=0.7, n_out=len(case.expected_stream))
    assert got == case.expected_stream
    want = case.expected_counters()
    want.update(filter_writes=loads * cfg.filters * cfg.channels * cfg.taps)
    assert counters == want


def test_modes_outside_the_pe_are_rejected(tiny_pe):
    with pytest.raises(ValueError, match=r"mode = 3 is out of range: allowed 0\.\.2"):
        tiny_pe.pack_config(PERowConfig(taps=1, channels=1, filters=1, width=4, mode=3))
    with pytest.raises(ValueError, match=r"filters = 5 .* allowed 1\.\.4 \(psum scratchpad"):
        tiny_pe.pack_config(PERowConfig(taps=1, channels=1, filters=5, width=4,
                                        mode=MODE_OS))
    with pytest.raises(ValueError, match=r"filters = 33 .* allowed 1\.\.32 \(filter"):
        tiny_pe.pack_config(PERowConfig(taps=1, channels=1, filters=33, width=4,
                                        mode=MODE_WS))
