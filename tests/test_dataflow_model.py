"""WS and OS in the mapper, the descriptors, the reference executor and the analytic model:
programs compute the golden convolution, the model's access counts equal what the executor
and a per-PE brute force observe, each dataflow shows its own reuse next to RS, ``auto`` is
never worse than a single dataflow, and what cannot run is refused with a clear message."""

import dataclasses

import numpy as np
import pytest

from gen.mapper import DATAFLOWS, Mapping, candidates, map_layer
from gen.perf import cost, estimate
from gen.program import build_program, execute
from gen.workload import NETWORKS, parse_layer
from hw.descriptor import DescError
from hw.params import preset
from hw.pe import PERowConfig
from tb.golden import conv2d_layer, random_activations, random_weights
from tb.pe_vectors import PECase

TINY, EYERISS = preset("tiny"), preset("eyeriss")

PE_NAMES = dict(macs="macs", gated_macs="gated_macs", filter_reads="filter_spad_reads",
                filter_writes="filter_spad_writes", ifmap_reads="ifmap_spad_reads",
                ifmap_writes="ifmap_spad_writes", psum_reads="psum_spad_reads",
                psum_writes="psum_spad_writes")


def inputs(layer, dw, seed):
    rng = np.random.default_rng(seed)
    x = random_activations(rng, (layer.N, layer.C, layer.H, layer.W), width=dw,
                           zero_fraction=0.4)
    w = random_weights(rng, (layer.M, layer.Cg, layer.R, layer.S), width=dw,
                       zero_fraction=0.1)
    return x, w


def observed(m, x, w):
    """The executor's counters, and every physical PE of every pass counted as tb.pe_vectors
    counts one PE in the dataflow's mode (WS: no psum scratchpad; OS: filters reloaded for
    every output column)."""
    prog = build_program(m, x, w)
    pe = dict.fromkeys(PE_NAMES.values(), 0)

    def hook(index, r, j, d, filters, rows):
        cfg = PERowConfig(taps=d.taps, channels=filters.shape[1], filters=d.filters,
                          stride=d.stride, width=d.padded_width)
        case = PECase(cfg=cfg, filters=filters, ifmaps=rows[None], psum_in=None,
                      data_width=m.params.data_width, psum_width=m.params.psum_width)
        c = case.expected_counters()
        if d.is_ws:
            c.update(psum_reads=0, psum_writes=0)
        if d.is_os:
            c["filter_writes"] *= d.out_width
        for name, v in c.items():
            pe[PE_NAMES[name]] += v

    image, counts = execute(prog, m.params, counters=True, pe_hook=hook)
    counts.update(pe)
    return prog.output(image), counts


CASES = [
    # (flow, spec, forced (q, p, vgroups, ncols) or None)
    ("ws", "C=3,M=8,H=16,R=3,pad=1", (1, 2, 2, 4)),
    ("ws", "C=5,M=7,H=9,W=11,R=3,S=2,stride=2,pad=2,N=2,relu=1", (2, 7, 1, 3)),
    ("ws", "C=6,M=9,H=12,R=1,S=1,pad=2,groups=3", (2, 3, 1, 3)),     # p=3 <= 32, groups
    ("ws", "C=2,M=3,H=7,W=30,R=2,S=4,stride=3,pad=1", None),
    ("ws", "alexnet-mini.conv2", None),
    ("os", "C=3,M=8,H=16,R=3,pad=1", (1, 2, 3, 4)),
    ("os", "C=5,M=7,H=9,W=11,R=3,S=2,stride=2,pad=2,N=2,relu=1", (2, 2, 2, 3)),
    ("os", "C=6,M=4,H=12,R=1,S=1,pad=2,groups=2", (3, 2, 1, 3)),
    ("os", "C=2,M=3,H=7,W=30,R=2,S=4,stride=3,pad=1", None),
    ("os", "alexnet-mini.conv3", None),
]


@pytest.mark.parametrize("flow, spec, forced", CASES)
def test_programs_compute_the_convolution_and_the_model_counts_them(flow, spec, forced):
    layer = parse_layer(spec)
    if forced:
        q, p, vg, nc = forced
        m = Mapping(layer=layer, params=TINY, dataflow=flow, q=q, p=p, vgroups=vg, ncols=nc)
    else:
        m = map_layer(layer, TINY, flow)
    assert m.dataflow == flow
    x, w = inputs(layer, TINY.data_width, len(spec))
    got, seen = observed(m, x, w)
    want = conv2d_layer(x, w, stride=layer.stride, pad=layer.pad, groups=layer.groups,
                        shift=layer.shift_for(TINY.data_width), out_width=TINY.data_width,
                        relu=layer.relu)
    np.testing.assert_array_equal(got, want, err_msg=m.describe())
    est = estimate(m, ifmap=x)
    assert {k: getattr(est, k) for k in seen} == seen


def test_ws_moves_the_psums_out_of_the_pes():
    """Same tiles as RS: the same weights, windows and MACs, no psum scratchpad traffic, and
    q*S psum-buffer updates per output instead of one."""
    layer = parse_layer("C=4,M=6,H=10,W=10,R=3,S=3,pad=1")
    x, _ = inputs(layer, 8, 1)
    rs, ws = (estimate(Mapping(layer=layer, params=TINY, dataflow=f, q=2, p=3, vgroups=2,
                               ncols=4), ifmap=x) for f in ("rs", "ws"))
    same = ("macs", "gated_macs", "filter_spad_reads", "filter_spad_writes",
            "ifmap_spad_reads", "ifmap_spad_writes", "glb_reads", "glb_writes",
            "dram_read_words", "dram_write_words", "gin_words", "passes")
    assert {k: getattr(ws, k) for k in same} == {k: getattr(rs, k) for k in same}
    assert rs.psum_spad_reads > 0 and ws.psum_spad_reads == ws.psum_spad_writes == 0
    assert ws.psum_buf_writes == 2 * 3 * rs.psum_buf_writes


def test_ws_holds_more_filters_than_the_psum_scratchpad():
    layer = parse_layer("C=4,M=24,H=6,W=6,R=1,S=1")
    ws = map_layer(layer, TINY, "ws")
    assert ws.p > TINY.psum_spad_depth
    assert all(m.p <= TINY.psum_spad_depth for m in candidates(layer, TINY, "rs"))


def test_os_keeps_psums_and_streams_weights():
    """OS: every MAC slot uses a weight written into the PE for its output alone (and read
    from the global buffer once per output column); each PE's psums leave once, complete over
    its channels, filter rows and taps."""
    layer = parse_layer("C=4,M=6,H=10,W=10,R=3,S=3,pad=1")
    x, _ = inputs(layer, 8, 2)
    m = Mapping(layer=layer, params=TINY, dataflow="os", q=1, p=3, vgroups=4, ncols=4)
    os_ = estimate(m, ifmap=x)
    assert os_.filter_spad_writes == os_.macs + os_.gated_macs
    rs = estimate(map_layer(layer, TINY, "rs"), ifmap=x)
    assert rs.filter_spad_writes * 4 < rs.macs + rs.gated_macs
    # one psum-buffer write per output of each PE column and pass: each PE accumulates over
    # its channels, all R filter rows and all taps before its psums leave
    descs = build_program(m, x, inputs(layer, 8, 3)[1]).descriptors
    assert os_.psum_buf_writes == sum(d.ncols * d.out_width * d.filters for d in descs)
    assert os_.psum_spad_writes > 0 and os_.glb_reads > rs.glb_reads


@pytest.mark.parametrize("params, net", [(TINY, "alexnet-mini"), (EYERISS, "alexnet")])
def test_auto_is_never_worse_than_one_dataflow(params, net):
    for layer in NETWORKS[net]:
        auto = map_layer(layer, params, "auto")
        costs = {}
        for flow in DATAFLOWS:
            try:
                costs[flow] = cost(map_layer(layer, params, flow))
            except ValueError:
                continue
        assert auto.dataflow in costs
        assert cost(auto) == min(costs.values()), (layer.name, costs)


def test_auto_uses_only_the_generated_dataflows():
    layer = parse_layer("C=4,M=6,H=8,W=8,R=3,S=3,pad=1")
    assert map_layer(layer, TINY.replace(dataflows=("os",)), "auto").dataflow == "os"
    assert map_layer(layer, TINY.replace(dataflows=("rs", "ws")), "auto").dataflow in ("rs",
                                                                                        "ws")
    with pytest.raises(ValueError, match=r"R\*S = 25 > 12: an OS PE holds a whole filter"):
        map_layer(parse_layer("C=2,M=2,H=8,W=8,R=5,S=5"), TINY.replace(dataflows=("os",)),
                  "auto")


def test_mapper_refuses_with_the_constraint():
    layer = parse_layer("C=4,M=6,H=8,W=8,R=3,S=3,pad=1")
    with pytest.raises(ValueError, match=r"dataflow 'ws' is not in the accelerator's "
                                         r"dataflows rs, os"):
        map_layer(layer, TINY.replace(dataflows=("rs", "os")), "ws")
    with pytest.raises(ValueError, match=r"q\*R\*S = 2\*9 > ifmap_spad_depth = 12"):
        Mapping(layer=layer, params=TINY, dataflow="os", q=2, p=1, vgroups=1, ncols=1)
    with pytest.raises(ValueError, match=r"vgroups = 7 > rows = 6"):
        Mapping(layer=layer, params=TINY, dataflow="os", q=1, p=1, vgroups=7, ncols=1)
    with pytest.raises(ValueError, match=r"p = 5 > psum_spad_depth = 4"):
        Mapping(layer=layer, params=TINY, dataflow="os", q=1, p=5, vgroups=1, ncols=1)
    with pytest.raises(ValueError, match=r"p\*q\*S = 11\*1\*3 > filter_spad_depth = 32"):
        Mapping(layer=layer, params=TINY, dataflow="ws", q=1, p=11, vgroups=1, ncols=1)
    # R > rows is fine for OS, whose PEs hold whole filter channels
    tall = parse_layer("C=1,M=2,H=10,W=6,R=8,S=1")
    assert map_layer(tall, TINY, "os").dataflow == "os"
    with pytest.raises(ValueError, match=r"R = 8 > rows = 6"):
        map_layer(tall, TINY, "ws")


def test_descriptor_checks_per_dataflow():
    layer = parse_layer("C=4,M=6,H=8,W=8,R=3,S=3,pad=1")
    x, w = inputs(layer, 8, 0)
    d = build_program(map_layer(layer, TINY, "ws"), x, w).descriptors[0]
    assert d.dataflow == 1 and d.error(TINY)[0] == DescError.NONE
    code, msg = d.error(TINY.replace(dataflows=("rs", "os")))
    assert code == DescError.DATAFLOW
    assert msg.startswith("dataflow = 1 is out of range: allowed 0 (rs), 2 (os)")
    assert dataclasses.replace(d, dataflow=3).error(TINY)[0] == DescError.DATAFLOW
    # WS may interleave more filters than the psum scratchpad holds; RS and OS may not
    many = dataclasses.replace(d, filters=TINY.psum_spad_depth + 1, chans=1, taps=3,
                               filt_words=3 * (TINY.psum_spad_depth + 1))
    assert many.error(TINY)[0] != DescError.FILTERS
    assert dataclasses.replace(many, dataflow=0).error(TINY)[0] == DescError.FILTERS
    o = build_program(map_layer(layer, TINY, "os"), x, w).descriptors[0]
    assert o.dataflow == 2 and o.active_rows == o.vgroups and o.error(TINY)[0] == DescError.NONE
    assert o.pqs == o.filters * o.chans * o.filt_rows * o.taps


@pytest.mark.parametrize("flow", ["rs", "ws", "os"])
def test_psum_forwarding_rules_follow_the_descriptors(flow):
    """gen.energy's inter-PE psum words for each dataflow, counted pass by pass: every
    psum-buffer write is a column's sum over its PE rows (RS, WS: vgroups*R rows; OS:
    vgroups), all but one of which handed a word to another PE."""
    from gen.energy import psum_forward_words
    layer = parse_layer("C=9,M=5,H=7,W=7,R=3,S=3,pad=1")
    m = map_layer(layer, TINY, flow)
    x, w = inputs(layer, 8, 4)
    descs = build_program(m, x, w).descriptors
    words = 0
    for d in descs:
        sums = d.ncols * d.out_width * d.filters * (d.pe_chans * d.taps if d.is_ws else 1)
        words += sums * (d.active_rows - 1)
    assert psum_forward_words(m, estimate(m, ifmap=x)) == words > 0
