"""The controller's descriptor check (hw/check.py) against PassDescriptor.error(), in
amaranth.sim: the same verdict for real descriptors of the mapper and for thousands of
corrupted ones (fields set to 0, to their neighbours, to their maximum, to random values),
and the derived values of every accepted one."""

import dataclasses
import random

import pytest
from amaranth.sim import Simulator

from gen.mapper import map_layer
from gen.perf import ring_cols
from gen.program import pass_plan
from gen.workload import parse_layer
from hw.check import CHECK_CYCLES, PRIORITY, DescriptorCheck
from hw.descriptor import DescError, PassDescriptor, descriptor_layout
from hw.params import PRESETS

LAYERS = ["C=3,M=4,H=6,W=6,R=3,S=3,pad=1", "C=8,M=8,H=9,W=9,R=3,S=3,stride=2,pad=1",
          "C=6,M=5,H=5,W=7,R=1,S=1", "C=4,M=4,H=6,W=6,R=3,S=3,pad=1,groups=4",
          "C=2,M=3,H=12,W=11,R=5,S=5,pad=2", "C=1,M=4,H=4,W=60,R=3,S=3,pad=1"]

PARAMS = {
    "tiny": PRESETS["tiny"],
    "eyeriss": PRESETS["eyeriss"],
    # RS only, a 32-bit DRAM port and no RLC codec (rlc_word_bits != dram_width)
    "rs-d32": PRESETS["tiny"].replace(name="rs_d32", dataflows=("rs",), dram_width=32,
                                      rlc_word_bits=16),
}


def seeds(params):
    """Real descriptors: every layer that maps, in every dataflow the hardware has."""
    out = []
    for spec in LAYERS:
        for flow in params.dataflows:
            try:
                mapping = map_layer(parse_layer(spec), params, flow)
            except ValueError:
                continue
            plan = pass_plan(mapping)
            out += [d for _, d in plan[:3]]
    assert out
    return out


def corrupt(rng, d: PassDescriptor, params) -> PassDescriptor:
    layout = descriptor_layout(params)
    names = [f.name for f in dataclasses.fields(PassDescriptor)]
    changes = {}
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        name = rng.choice(names)
        width = layout[name].shape.width
        top = (1 << width) - 1
        v = int(getattr(d, name))
        changes[name] = rng.choice([0, 1, max(0, v - 1), min(top, v + 1), top,
                                    rng.randrange(top + 1), rng.randrange(min(top, 40) + 1)])
    return dataclasses.replace(d, **changes)


def refilter(rng, d: PassDescriptor, params) -> PassDescriptor:
    """Another filter count with the filter block sized to match (reaches the rules after
    GLB, e.g. a psum buffer too small for out_width x filters)."""
    d = dataclasses.replace(d, filters=rng.randrange(1, 4 * d.filters + 9))
    return dataclasses.replace(d, filt_words=d.filter_groups(params) * d.pqs)


def expected_derived(d: PassDescriptor, params) -> dict:
    return dict(ws=int(d.is_ws), os=int(d.is_os), pe_q=d.pe_chans, qs=d.pe_chans * d.taps,
                pqs=d.pqs, act_rows=d.active_rows, padded=d.padded_width,
                pf=d.filters * d.out_width, s_stride=d.chans * d.ch_words,
                glb_lo=d.row_lo * d.row_words, **ring(d, params.ifmap_spad_depth))


def ring(d: PassDescriptor, depth: int) -> dict:
    """The PEs' ifmap ring, as gen.perf models it (the check derives it from a table)."""
    q = d.pe_chans
    cols = ring_cols(q, depth)
    return dict(ring_cols=cols, ring_words=cols * q, step_words=q * (d.stride % cols))


@pytest.mark.parametrize("name", PARAMS)
def test_check_matches_the_mapper(name):
    params = PARAMS[name]
    rng = random.Random(7)
    base = seeds(params)
    cases = list(base)
    while len(cases) < 1500:
        change = corrupt if rng.random() < 0.8 else refilter
        cases.append(change(rng, rng.choice(base), params))
    dut = DescriptorCheck(params)
    verdicts = {}

    async def bench(ctx):
        for i, d in enumerate(cases):
            ctx.set(dut.desc.as_value(), d.pack(params))
            ctx.set(dut.run, 1)
            for k in range(CHECK_CYCLES):
                assert ctx.get(dut.done) == (k == CHECK_CYCLES - 1), (i, k)
                if k < CHECK_CYCLES - 1:
                    await ctx.tick()
            got = DescError(ctx.get(dut.err))
            want, why = d.error(params)
            verdicts[want] = verdicts.get(want, 0) + 1
            assert got == want, (i, d, why)
            if want == DescError.NONE:
                derived = {f: ctx.get(getattr(dut.derived, f))
                           for f in expected_derived(d, params)}
                assert derived == expected_derived(d, params), (i, d)
            await ctx.tick()
            ctx.set(dut.run, 0)              # a cycle out of CHECK restarts the engine
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # the corruptions reach most rules, and many real descriptors pass
    assert verdicts[DescError.NONE] >= len(base)
    reached = {e for e in verdicts if e != DescError.NONE}
    must = set(PRIORITY) - {DescError.DATAFLOW if len(params.dataflows) == 3 else None}
    missing = must - reached - {None}
    assert not missing, (missing, verdicts)
