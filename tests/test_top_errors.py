"""A descriptor the controller cannot execute sets an error code and is dropped -- no hang.

Each case corrupts one field of a real descriptor; the hardware's error code must be the one
PassDescriptor.error() (the mapper's check) gives, and the accelerator must stop promptly."""

import dataclasses

import numpy as np
import pytest

from gen.emit import cached_verilog
from gen.mapper import map_layer
from gen.program import build_program
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
