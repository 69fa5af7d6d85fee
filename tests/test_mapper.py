"""Workloads, the mapper and programs: layer validation, named layers, mapping legality, and
the numpy reference executor running the generated descriptors against the golden model."""

import zlib

import numpy as np
import pytest

from gen.mapper import Mapping, candidates, map_layer, mapping_error
from gen.program import (build_program, dram_layout, e_chunks, execute, pack_activations,
                         pass_plan, unpack_activations)
from gen.workload import LAYERS, NETWORKS, ConvLayer, parse_layer
from hw.descriptor import DescError
from hw.params import PRESETS, preset
from tb.golden import conv2d_layer, random_activations, random_weights

TINY, SMALL, EYERISS = preset("tiny"), preset("small"), preset("eyeriss")


# ---- ConvLayer and parse_layer -------------------------------------------------------------

@pytest.mark.parametrize("fields, message", [
    (dict(stride=0), r"^stride = 0 is out of range: allowed 1\.\.15$"),
    (dict(stride=16), r"^stride = 16 is out of range: allowed 1\.\.15$"),
    (dict(C=0), r"^C = 0 is out of range: allowed >= 1$"),
    (dict(pad=-1), r"^pad = -1 is out of range: allowed >= 0$"),
    (dict(groups=3), r"^groups = 3 does not divide C = 4: allowed a common divisor"),
    (dict(C=6, groups=3), r"^groups = 3 does not divide M = 8"),
    (dict(H=4, W=4, R=5, S=5),
     r"^layer C=4,M=8,H=4,W=4,R=5,S=5 has an empty output: E = 0 \(R = 5 > H \+ 2\*pad = 4\)"),
    (dict(H=9, W=2, R=3, S=3), r"has an empty output: F = 0 \(S = 3 > W \+ 2\*pad = 2\)"),
    (dict(N=1.5), r"^N must be an integer"),
    (dict(relu=1), r"^relu must be True or False"),
])
def test_conv_layer_validation(fields, message):
    base = dict(name="t", C=4, M=8, H=8, W=8, R=3, S=3)
    with pytest.raises(ValueError, match=message):
        ConvLayer(**{**base, **fields})


def test_conv_layer_derived():
    layer = ConvLayer(name="t", N=2, C=6, M=8, H=10, W=12, R=3, S=2, stride=2, pad=1, groups=2)
    assert (layer.E, layer.F, layer.Cg, layer.Mg) == (5, 7, 3, 4)
    assert layer.macs == 2 * 8 * 5 * 7 * 3 * 3 * 2
    # (data_width - 1) + ceil(log2(C/groups*R*S) / 2): 18 terms -> 7 + 3
    assert layer.auto_shift(8) == 10 and layer.auto_shift(16) == 18
    assert layer.replace(shift=4).shift_for(8) == 4 and layer.shift_for(8) == 10
    assert ConvLayer(C=1, M=1, H=1, W=1, R=1, S=1).auto_shift(8) == 7


def test_parse_layer_specs():
    layer = parse_layer("C=3,M=8,H=16,R=3,pad=1")
    assert (layer.W, layer.S, layer.stride, layer.N, layer.groups, layer.relu, layer.shift) == \
        (16, 3, 1, 1, 1, False, None)
    full = parse_layer(" C=4, M=6, H=9, W=11, R=3, S=2, stride=2, pad=2, N=2, relu=1, "
                       "shift=6, groups=2 ")
    assert (full.C, full.M, full.H, full.W, full.R, full.S, full.stride, full.pad, full.N,
            full.relu, full.shift, full.groups) == (4, 6, 9, 11, 3, 2, 2, 2, 2, True, 6, 2)
    assert parse_layer(full.spec()) == full.replace(name="custom")
    assert parse_layer(layer.spec()) == layer


@pytest.mark.parametrize("text, message", [
    ("C=3,M=8,H=16,R=3,foo=2", r"unknown key 'foo': allowed keys N, C, M, H, W, R, S, stride"),
    ("C=3,M=8,R=3", r"lacks H: required C, M, H, R"),
    ("C=3,M=8,H=x,R=3", r"H = 'x' is not an integer"),
    ("C=3,M=8,H=16,R=3,relu=maybe", r"relu = 'maybe' is invalid"),
    ("C=3,M=8,H=16,R=3,stride=0", r"stride = 0 is out of range: allowed 1\.\.15"),
    ("googlenet.conv1", r"unknown layer 'googlenet.conv1': .*lenet5, alexnet, alexnet-mini, "
                        r"vgg16, resnet50"),
    ("alexnet.conv9", r"alexnet has alexnet.conv1, .*alexnet.conv5"),
    ("", r"non-empty"),
])
def test_parse_layer_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_layer(text)


def test_named_layers():
    assert parse_layer("alexnet.conv1") is LAYERS["alexnet.conv1"]
    c1 = parse_layer("alexnet.conv1,N=4")
    assert c1.N == 4 and c1.R == 11 and c1.name == "alexnet.conv1"
    assert [l.name.split(".")[1] for l in NETWORKS["lenet5"]] == \
        ["conv1", "pool1", "conv2", "pool2", "conv3", "fc1", "fc2"]
    assert [(l.M, l.E) for l in NETWORKS["lenet5"]] == \
        [(6, 28), (6, 14), (16, 10), (16, 5), (120, 1), (84, 1), (10, 1)]
    assert NETWORKS["lenet5"][1].groups == 6 and not NETWORKS["lenet5"][-1].relu
    assert len(NETWORKS["vgg16"]) == 13
    assert {l.H for l in NETWORKS["vgg16"]} == {224, 112, 56, 28, 14}
    assert all(l.R == 3 and l.pad == 1 and l.E == l.H for l in NETWORKS["vgg16"])
    r = {l.name.split(".")[1]: l for l in NETWORKS["resnet50"]}
    assert (r["conv1"].E, r["conv1"].M) == (112, 64)
    assert (r["res3a_branch1"].E, r["res3a_branch1"].M) == (28, 512)
    assert r["res5a_branch2b"].E == 7


def test_alexnet_shapes_and_macs():
    net = NETWORKS["alexnet"]
    shapes = [(l.C, l.M, l.H, l.R, l.stride, l.pad, l.groups, l.E) for l in net]
    assert shapes == [(3, 96, 227, 11, 4, 0, 1, 55), (96, 256, 27, 5, 1, 2, 2, 27),
                      (256, 384, 13, 3, 1, 1, 1, 13), (384, 384, 13, 3, 1, 1, 2, 13),
                      (384, 256, 13, 3, 1, 1, 2, 13)]
    for layer, mmacs in zip(net, (105.4, 223.9, 149.5, 112.1, 74.8)):
        assert layer.macs / 1e6 == pytest.approx(mmacs, abs=0.05)
    assert sum(l.macs for l in net) / 1e6 == pytest.approx(665.8, abs=0.1)


@pytest.mark.parametrize("net", ["alexnet", "alexnet-mini"])
def test_networks_chain(net):
    layers = NETWORKS[net]
    for a, b in zip(layers, layers[1:]):
        if net == "alexnet":  # AlexNet pools between CONV1/2 and CONV2/3
            assert a.M == b.C
        else:
            assert (a.M, a.E, a.F) == (b.C, b.H, b.W)


def test_alexnet_mini_runs_on_tiny():
    for layer in NETWORKS["alexnet-mini"]:
        assert map_layer(layer, TINY).passes <= 64


# ---- map_layer legality ------------------------------------------------------------------

@pytest.mark.parametrize("spec, params, message", [
    ("C=3,M=8,H=16,R=7,pad=1", TINY,
     r"R = 7 > rows = 6: filter height exceeds the PE array"),
    ("C=64,M=8,H=8,R=3,pad=1", TINY,
     r"psum_width = 24 too narrow: C/groups\*R\*S = 576 products of 8-bit values need 25 bits"),
    ("C=3,M=8,H=4,W=130,R=1", TINY, r"psum buffer too small: F = 130 > psum_buf_depth = 128"),
    ("C=3,M=8,H=8,W=200,R=6,stride=15", TINY.replace(glb_kib=1, psum_buf_depth=16),
     r"global buffer too small: the smallest pass needs 156 words, glb_pass_words = 52"),
    ("C=3,M=8,H=8,W=20,R=3,S=13", TINY, r"S = 13 > ifmap_spad_depth = 12"),
    ("C=3,M=8,H=8,R=3,shift=30", TINY, r"shift = 30 is out of range: allowed 0\.\.23"),
])
def test_map_layer_refuses(spec, params, message):
    with pytest.raises(ValueError, match=message):
        map_layer(parse_layer(spec), params)


def test_map_layer_dataflows():
    layer = parse_layer("C=3,M=8,H=8,R=3")
    with pytest.raises(ValueError, match=r"dataflow 'xs' is invalid: allowed rs, ws, os"):
        map_layer(layer, TINY, "xs")
    with pytest.raises(ValueError, match=r"dataflow 'rs' is not in the accelerator"):
        map_layer(layer, TINY.replace(dataflows=("ws",)), "rs")


def test_mapping_checks_itself():
    layer = parse_layer("C=8,M=8,H=8,R=3,pad=1")
    with pytest.raises(ValueError, match=r"q\*S = 5\*3 > ifmap_spad_depth = 12"):
        Mapping(layer=layer, params=TINY, q=5, p=1, vgroups=1, ncols=1)
    with pytest.raises(ValueError, match=r"vgroups\*R = 3\*3 > rows = 6"):
        Mapping(layer=layer, params=TINY, q=1, p=1, vgroups=3, ncols=1)
    with pytest.raises(ValueError, match=r"ncols = 5 is out of range"):
        Mapping(layer=layer, params=TINY, q=1, p=1, vgroups=1, ncols=5)
    assert mapping_error(layer, TINY, q=1, p=5, vgroups=1, ncols=1) == \
        "p = 5 > psum_spad_depth = 4"
    m = Mapping(layer=layer, params=TINY, q=2, p=3, vgroups=2, ncols=3)
    assert (m.e_chunks, m.m_tiles, m.c_tiles, m.groups, m.passes) == (3, 3, 2, 1, 18)
    assert "q=2 p=3 vgroups=2 ncols=3" in m.describe() and "= 18" in m.describe()


def random_layer(rng, params, *, max_hw=20):
    """A random small layer that the accelerator can run."""
    while True:
        groups = int(rng.choice([1, 1, 2]))
        R = int(rng.integers(1, min(params.rows, 5) + 1))
        S = int(rng.integers(1, 6))
        stride = int(rng.choice([1, 1, 2, 3, 4]))
        pad = int(rng.integers(0, 3))
        H, W = (int(v) for v in rng.integers(max(R, S), max_hw + 1, size=2))
        layer = ConvLayer(name="rand", N=int(rng.choice([1, 1, 2])),
                          C=groups * int(rng.integers(1, 9)), M=groups * int(rng.integers(1, 11)),
                          H=H, W=W, R=R, S=S, stride=stride, pad=pad, groups=groups,
                          relu=bool(rng.integers(0, 2)))
        if next(candidates(layer, params), None) is not None:
            return layer


@pytest.mark.parametrize("name", PRESETS)
def test_mapped_descriptors_pass_check(name):
    params = PRESETS[name]
    rng = np.random.default_rng(7)
    for _ in range(30):
        layer = random_layer(rng, params)
        m = map_layer(layer, params)
        plan = pass_plan(m)
        assert len(plan) == m.passes
        for _, d in plan:
            assert d.error(params)[0] == DescError.NONE
        plan[-1][1].pack(params)  # every field fits its width


def test_alexnet_descriptors_pass_check_and_pack():
    for layer in NETWORKS["alexnet"]:
        m = map_layer(layer, EYERISS)
        plan = pass_plan(m, in_base=0, filt_base=1 << 20, out_base=1 << 24)
        for _, d in plan:
            d.check(EYERISS)
        plan[0][1].pack(EYERISS)
        plan[-1][1].pack(EYERISS)


def test_mapper_prefers_fewer_cycles():
    from gen.perf import cost
    layer = LAYERS["alexnet.conv3"]
    best = map_layer(layer, EYERISS)
    best_cycles = cost(best)[0]
    assert all(cost(m)[0] >= best_cycles for m in candidates(layer, EYERISS))


# ---- DRAM image and activation layout -------------------------------------------------------

def test_pack_activations_round_trip():
    rng = np.random.default_rng(1)
    for params in (TINY, EYERISS, TINY.replace(data_width=12, psum_width=32),
                   EYERISS.replace(dram_width=128)):
        x = random_activations(rng, (2, 3, 4, 13), width=params.data_width, zero_fraction=0.3)
        words = pack_activations(x, params)
        assert len(words) == 2 * 3 * 4 * -(-13 // params.lanes)
        assert all(0 <= w < (1 << params.dram_width) for w in words)
        np.testing.assert_array_equal(unpack_activations(words, x.shape, params), x)


def test_pack_activations_lane_order():
    x = np.array([-1, 2, 3, -128, 127, 0, 0, 0, 5], dtype=np.int64).reshape(1, 1, 1, 9)
    words = pack_activations(x, TINY)
    assert words[0] == 0xff | (2 << 8) | (3 << 16) | (0x80 << 24) | (127 << 32)
    assert words[1] == 5
    with pytest.raises(ValueError, match=r"activations holds 128: allowed \[-128, 127\]"):
        pack_activations(x + 1, TINY)


def test_program_layout():
    layer = parse_layer("C=5,M=7,H=6,W=10,R=3,S=2,pad=1,groups=1")
    m = Mapping(layer=layer, params=TINY, q=2, p=3, vgroups=2, ncols=3)
    rng = np.random.default_rng(2)
    x = random_activations(rng, (1, 5, 6, 10), width=8, zero_fraction=0.0)
    w = random_weights(rng, (7, 5, 3, 2), width=8)
    prog = build_program(m, x, w)
    lay = dram_layout(m)
    assert (prog.in_base, prog.filt_base, prog.out_base) == (0, 5 * 6 * 2, lay["out_base"])
    assert prog.out_shape == (1, 7, layer.E, layer.F)
    assert prog.dram[prog.out_base:] == [0] * (7 * layer.E * 2)
    np.testing.assert_array_equal(
        unpack_activations(prog.dram[:prog.filt_base], x.shape, TINY), x)
    # filter block (group 0, m-tile 1, c-tile 1): PE row r = g*L + l, word g*pqs + idx
    d = next(d for k, d in pass_plan(m, filt_base=prog.filt_base)
             if (k.mtile, k.ctile) == (1, 1))
    pqs, L = d.pqs, TINY.lanes

    def weight(r, idx):
        word = prog.dram[d.filt_dram + (r // L) * pqs + idx]
        v = (word >> (8 * (r % L))) & 0xff
        return v - 256 if v & 0x80 else v
    for r in range(8):
        s, i = divmod(r, 3)
        for f in range(3):
            for tap in range(2):
                for c in range(2):
                    idx = (f * 2 + tap) * 2 + c
                    cw, mm = 4 + s * 2 + c, 3 + f
                    want = w[mm, cw, i, tap] if (r < 6 and cw < 5) else 0
                    assert weight(r, idx) == want, (r, f, tap, c)


def test_descriptor_fields():
    layer = parse_layer("C=5,M=7,H=6,W=10,R=3,S=2,stride=2,pad=2,N=2")
    m = Mapping(layer=layer, params=TINY, q=2, p=3, vgroups=1, ncols=2)
    plan = dict(pass_plan(m, in_base=100, filt_base=1000, out_base=5000))
    chunks = e_chunks(layer, 2)
    assert [(c.e0, c.ncols, c.h_first, c.nrows, c.row_lo, c.row_hi) for c in chunks] == \
        [(0, 2, -2, 5, 2, 5), (2, 2, 2, 5, 0, 4)]
    key = next(k for k in plan if (k.n, k.mtile, k.echunk, k.ctile) == (1, 2, 1, 2))
    d = plan[key]
    assert (d.nch_valid, d.accumulate, d.last, d.p_valid) == (1, True, True, 1)
    assert d.in_dram == 100 + ((1 * 5 + 4) * 6 + 2 + 0) * 2
    assert (d.in_burst, d.in_ch_stride, d.ch_words, d.filt_glb) == (8, 12, 10, 20)
    assert d.out_dram == 5000 + ((1 * 7 + 6) * layer.E + 2) * 1
    assert d.filt_dram == 1000 + (2 * 3 + 2) * d.filt_words


# ---- executing programs ---------------------------------------------------------------------

def run_and_compare(m, rng, *, zero_fraction=0.5):
    layer, params = m.layer, m.params
    dw = params.data_width
    x = random_activations(rng, (layer.N, layer.C, layer.H, layer.W), width=dw,
                           zero_fraction=zero_fraction)
    w = random_weights(rng, (layer.M, layer.Cg, layer.R, layer.S), width=dw,
                       zero_fraction=0.1)
    prog = build_program(m, x, w)
    got = prog.output(execute(prog, params))
    want = conv2d_layer(x, w, stride=layer.stride, pad=layer.pad, groups=layer.groups,
                        shift=layer.shift_for(dw), out_width=dw, relu=layer.relu)
    np.testing.assert_array_equal(got, want, err_msg=m.describe())
    return x, got


# (spec, q, p, vgroups, ncols): forced mappings that exercise every tiling path on tiny
FORCED = [
    ("C=3,M=8,H=16,R=3,pad=1", 1, 2, 2, 4),                        # c-tiles, m-tiles, e-chunks
    ("C=5,M=7,H=9,W=11,R=3,S=2,stride=2,pad=2,N=2,relu=1", 2, 3, 1, 3),  # R != S, ragged
    ("C=4,M=6,H=10,R=1,groups=2", 1, 2, 3, 4),                     # 1x1, groups, vgroups > Cg
    ("C=6,M=4,H=12,R=1,S=1,pad=2,groups=2", 2, 1, 2, 3),           # 1x1 with padding rows
    ("C=3,M=5,H=23,W=21,R=5,S=5,stride=4", 1, 2, 1, 4),            # stride 4
    ("C=2,M=3,H=7,W=30,R=2,S=4,stride=3,pad=1", 2, 4, 3, 2),       # stride > R: idle rows
    ("C=8,M=9,H=6,W=6,R=3,S=3,pad=2,relu=1", 4, 2, 2, 4),          # pad 2, all rows in a chunk
    ("C=7,M=3,H=5,W=9,R=2,S=1,pad=1,N=2", 3, 3, 3, 2),             # S = 1, q*S = 3
    ("C=1,M=1,H=3,W=3,R=1,S=1", 1, 1, 1, 3),                       # q*S = 1: no psum spad
    ("C=2,M=4,H=4,W=17,R=1,S=2,stride=2", 1, 4, 6, 1),             # q*S = 2, ncols = 1
    ("C=4,M=4,H=8,W=8,R=6,S=3,pad=1", 2, 2, 1, 4),                 # R = rows
    ("C=6,M=6,H=9,W=9,R=3,S=3,stride=2,pad=1,groups=3", 1, 2, 2, 4),
]


@pytest.mark.parametrize("spec, q, p, vgroups, ncols", FORCED)
def test_execute_forced_mappings(spec, q, p, vgroups, ncols):
    m = Mapping(layer=parse_layer(spec), params=TINY, q=q, p=p, vgroups=vgroups, ncols=ncols)
    run_and_compare(m, np.random.default_rng(zlib.crc32(spec.encode())))


def test_execute_random_layers_tiny():
    rng = np.random.default_rng(11)
    features = set()
    for _ in range(24):
        layer = random_layer(rng, TINY)
        m = map_layer(layer, TINY)
        run_and_compare(m, rng)
        features |= {f"stride{layer.stride}", f"pad{layer.pad}", f"N{layer.N}",
                     f"groups{layer.groups}", f"relu{int(layer.relu)}"}
        features |= {"c-tiles"} if m.c_tiles > 1 else set()
        features |= {"m-tiles"} if m.m_tiles > 1 else set()
        features |= {"e-chunks"} if m.e_chunks > 1 else set()
    assert {"pad0", "pad1", "pad2", "stride1", "stride2", "N2", "groups2", "relu0", "relu1",
            "c-tiles", "m-tiles", "e-chunks"} <= features


def test_execute_small_preset():
    rng = np.random.default_rng(5)
    for _ in range(4):
        run_and_compare(map_layer(random_layer(rng, SMALL), SMALL), rng)


@pytest.mark.parametrize("name", [l.name for l in NETWORKS["alexnet-mini"]])
def test_execute_alexnet_mini_eyeriss(name):
    run_and_compare(map_layer(LAYERS[name], EYERISS), np.random.default_rng(3))


def test_execute_conv3_like_eyeriss():
    layer = ConvLayer(name="conv3-cut", C=40, M=52, H=13, W=13, R=3, S=3, pad=1, relu=True)
    m = map_layer(layer, EYERISS)
    assert m.c_tiles > 1 or m.m_tiles > 1
    run_and_compare(m, np.random.default_rng(4))


def test_alexnet_mini_chain_on_tiny():
    """The five layers run back to back: each output region is the next layer's input."""
    rng = np.random.default_rng(9)
    layers = NETWORKS["alexnet-mini"]
    x = random_activations(rng, (1, 3, 29, 29), width=8, zero_fraction=0.2)
    want = x
    for layer in layers:
        # a smaller shift than the automatic one keeps ReLU'd random data alive for 5 layers
        layer = layer.replace(shift=layer.auto_shift(8) - 2)
        w = random_weights(rng, (layer.M, layer.Cg, layer.R, layer.S), width=8)
        prog = build_program(map_layer(layer, TINY), x, w)
        image = execute(prog, TINY)
        out_words = image[prog.out_base:prog.out_base + prog.out_words]
        x = unpack_activations(out_words, (1, layer.M, layer.E, layer.F), TINY)
        want = conv2d_layer(want, w, stride=layer.stride, pad=layer.pad, groups=layer.groups,
                            shift=layer.shift_for(8), out_width=8, relu=layer.relu)
        np.testing.assert_array_equal(x, want)
        assert np.count_nonzero(x) > x.size // 4
    assert x.shape == (1, 16, 7, 7)


def test_build_program_checks_inputs():
    layer = parse_layer("C=2,M=2,H=4,R=3")
    m = map_layer(layer, TINY)
    good_w = np.zeros((2, 2, 3, 3), dtype=np.int64)
    with pytest.raises(ValueError, match=r"ifmap has shape \(1, 2, 4, 5\): allowed \(1, 2, 4, 4\)"):
        build_program(m, np.zeros((1, 2, 4, 5), dtype=np.int64), good_w)
    with pytest.raises(ValueError, match=r"weights holds 200"):
        build_program(m, np.zeros((1, 2, 4, 4), dtype=np.int64), good_w + 200)
