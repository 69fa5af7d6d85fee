"""A descriptor the controller cannot execute sets an error code and is dropped -- no hang.

Each case corrupts one field of a real descriptor; the hardware's error code must be the one
PassDescriptor.error() (the mapper's check) gives, and the accelerator must stop promptly."""

import dataclasses

import numpy as np
import pytest

from gen.emit import cached_verilog
from gen.mapper import map_layer
from gen.program import Program, build_network, build_program, encode_tensor, execute
from gen.run import CACHE
from gen.workload import parse_layer
from hw.descriptor import DescError
from hw.params import PRESETS
from tb.golden import random_activations, random_weights
from tb.runner import SIMULATORS
from tb.top_regression import run_program_bench

TINY = PRESETS["tiny"]


@pytest.fixture(scope="module")
def good():
    layer = parse_layer("C=3,M=4,H=6,W=6,R=3,S=3,pad=1")
    mapping = map_layer(layer, TINY)
    rng = np.random.default_rng(0)
    x = random_activations(rng, (1, 3, 6, 6), width=8, zero_fraction=0.3)
    w = random_weights(rng, (4, 3, 3, 3), width=8)
    return build_program(mapping, x, w)


CORRUPTIONS = [
    ("taps0", dict(taps=0), DescError.TAPS),
    ("filters-beyond-psum-spad", dict(filters=TINY.psum_spad_depth + 1), DescError.FILTERS),
    ("stride0", dict(stride=0), DescError.STRIDE),
    ("rows-beyond-array", dict(vgroups=TINY.rows + 1), DescError.ROWS),
    ("ncols0", dict(ncols=0), DescError.COLS),
    ("out-width-too-big", dict(out_width=200), DescError.WIDTH),
    ("nrows-inconsistent", dict(nrows=7), DescError.GEOMETRY),
    ("filters-outside-glb", dict(filt_glb=TINY.glb_pass_words), DescError.GLB),
    ("p-valid0", dict(p_valid=0), DescError.WRITEBACK),
]


@pytest.mark.parametrize("sim", SIMULATORS)
def test_bad_descriptors_set_error_codes(sim, good):
    verilog = cached_verilog(TINY, "rowstat_top", CACHE)
    first = good.descriptors[0]
    cases = CORRUPTIONS if sim == "verilator" else CORRUPTIONS[::4]
    for name, change, code in cases:
        bad = dataclasses.replace(first, **change)
        assert bad.error(TINY)[0] == code, name          # the mapper's check agrees
        r = run_program_bench(TINY, verilog, descriptors=[bad.pack(TINY)], dram=good.dram,
                              out_base=good.out_base, out_words=good.out_words,
                              expected=[0] * good.out_words, sim=sim,
                              work=verilog.parent / "sim", cycle_limit=20_000)
        assert r.get("error") == 1, (name, r.get("log"))
        assert r["error_code"] == code.value, (name, r["error_code"])
        assert r["passes_done"] == 0 and not r["timeout"], name
        assert r["counters"]["dram_read_words"] == 0, name   # nothing was loaded


@pytest.fixture(scope="module")
def compressed():
    """Layer B of a two-layer chain, reading layer A's output compressed from DRAM. B is
    depthwise (output plane m reads only input plane m) and its rows are as wide as the
    pairs of one RLC word on tiny, so a short stream can end exactly on a word."""
    a = map_layer(parse_layer("C=2,M=3,H=6,W=4,R=3,S=3,pad=1"), TINY)
    b = map_layer(parse_layer("C=3,M=3,H=6,W=4,R=3,S=3,pad=1,groups=3"), TINY)
    assert b.layer.W == TINY.rlc_pairs_per_word
    rng = np.random.default_rng(1)
    x = random_activations(rng, (1, 2, 6, 4), width=8, zero_fraction=0.3)
    ws = [random_weights(rng, (3, 2, 3, 3), width=8), random_weights(rng, (3, 1, 3, 3), width=8)]
    net = build_network([a, b], x, ws, rlc=True)
    mid = net.programs[1]
    x1 = random_activations(rng, (1, 3, 6, 4), width=8, zero_fraction=0.3)
    dram = list(net.dram)
    dram[mid.in_base:mid.in_base + mid.in_rlc.total_words] = \
        encode_tensor(x1, mid.in_rlc, TINY)
    whole = Program(descriptors=mid.descriptors, dram=dram, in_base=0, filt_base=0,
                    out_base=0, out_shape=(1, 1, 1, 1), params=TINY)
    good = mid.output(execute(whole, TINY))
    return mid, dram, good


@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("corruption", ["index-zero", "index-long", "index-short", "flag-lost"])
def test_corrupt_compressed_input_sets_error_without_hang(sim, corruption, compressed):
    """Input plane 0's index or stream does not fit: error RLC, the burst drained, every pass
    completes, and the output planes that do not read plane 0 are still right."""
    prog, good_dram, good = compressed
    lay = prog.in_rlc
    dram = list(good_dram)
    base = prog.in_base + lay.index(0, 0)
    w, lane = lay.entry(lay.H - 1)
    end = (dram[base + w] >> (16 * lane)) & 0xFFFF
    if corruption == "index-zero":          # every row ends at 0: end <= start
        for k in range(lay.idx_words):
            dram[base + k] = 0
    elif corruption == "flag-lost":         # the last word of the plane loses its flag
        dram[prog.in_base + lay.plane(0, 0) + end - 1] &= ~(1 << (TINY.dram_width - 1))
    else:                                   # the last row ends later / one word sooner
        new = end + 2 if corruption == "index-long" else end - 1
        dram[base + w] = dram[base + w] & ~(0xFFFF << (16 * lane)) | (new << (16 * lane))
    verilog = cached_verilog(TINY, "rowstat_top", CACHE)
    r = run_program_bench(TINY, verilog, descriptors=[d.pack(TINY) for d in prog.descriptors],
                          dram=dram, out_base=prog.out_base, out_words=prog.out_words,
                          expected=[0] * prog.out_words, sim=sim,
                          work=verilog.parent / "sim", cycle_limit=200_000,
                          through_errors=True)
    assert r.get("error") == 1, r.get("log")
    assert r["error_code"] == DescError.RLC.value
    assert r["passes_done"] == len(prog.descriptors) and not r["timeout"]
    out = np.array(prog.output([0] * prog.out_base + list(r["output"])))
    assert np.array_equal(out[:, 1:], good[:, 1:])
