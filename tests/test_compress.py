"""Compressed feature maps: the layout, the reference codec against the golden one, the
reference executor through compressed layers, and the model's DRAM words for them."""

import numpy as np
import pytest

from gen.compress import (decode_row, encode_row, entropy_bits, rlc_layout, row_words)
from gen.mapper import map_layer
from gen.perf import estimate
from gen.program import (Program, build_network, decode_tensor, encode_tensor, execute)
from gen.run import network_data
from gen.workload import NETWORKS
from hw.params import PRESETS
from tb.golden import rlc_decode, rlc_encode

TINY, EYERISS = PRESETS["tiny"], PRESETS["eyeriss"]


def _golden_words(row, p):
    return rlc_encode(row, run_bits=p.rlc_run_bits, level_bits=p.data_width,
                      word_bits=p.rlc_word_bits)


@pytest.mark.parametrize("p", [TINY, EYERISS], ids=["tiny", "eyeriss"])
def test_codec_equals_golden(p):
    rng = np.random.default_rng(1)
    lim = 1 << (p.data_width - 1)
    rows = [np.zeros(31), np.zeros(32), np.zeros(33), np.r_[np.zeros(31), 5],
            np.r_[np.zeros(32), -3], np.r_[7, np.zeros(64)], np.arange(1, 20), [0], [lim - 1],
            [-lim]]
    for _ in range(300):
        n = int(rng.integers(1, 120))
        rows.append(np.where(rng.random(n) < rng.random(), 0, rng.integers(-lim, lim, n)))
    for row in rows:
        row = np.asarray(row, dtype=np.int64)
        words = encode_row(row, p)
        assert words == _golden_words(row, p)
        back, used = decode_row(words + [123], len(row), p)     # stops at its last word
        assert used == len(words) and np.array_equal(back, row)
        assert np.array_equal(rlc_decode(words, len(row), run_bits=p.rlc_run_bits,
                                         level_bits=p.data_width,
                                         word_bits=p.rlc_word_bits), row)
        assert row_words(row[None], p)[0] == len(words)


def test_decoder_refuses_malformed_streams():
    words = encode_row(np.array([0, 0, 3, 0, 4]), TINY)
    with pytest.raises(ValueError, match="malformed"):
        decode_row(words, 9, TINY)                       # the flagged word comes too early
    with pytest.raises(ValueError, match="ends after"):
        decode_row([], 3, TINY)                          # no words at all
    with pytest.raises(ValueError, match="malformed"):
        decode_row([words[0] & ~(1 << 63)], 5, TINY)    # last word without its flag


def test_layout_and_tensor_round_trip():
    rng = np.random.default_rng(2)
    x = np.where(rng.random((2, 3, 11, 9)) < 0.7, 0, rng.integers(-100, 100, (2, 3, 11, 9)))
    lay = rlc_layout(EYERISS, N=2, C=3, H=11, W=9, ncw=4)
    assert (lay.slot, lay.plane_words, lay.wpg, lay.idx_words) == (3, 33, 1, 3)
    assert lay.entry(0) == (0, 0) and lay.entry(5) == (1, 1) and lay.entry(10) == (2, 2)
    words = encode_tensor(x, lay, EYERISS)
    assert len(words) == lay.total_words
    assert np.array_equal(decode_tensor(words, lay, EYERISS), x)
    with pytest.raises(ValueError, match="16-bit row index"):
        rlc_layout(EYERISS, N=1, C=1, H=4000, W=4000, ncw=14)


def test_entropy_bound():
    p = EYERISS
    # one kind of pair: only the bits below the leading one (7 = 0b111: two) are information
    assert entropy_bits(np.full((4, 5), 7), p) == pytest.approx(40.0)
    # pairs (0, 1) and (0, 2) equally likely: one bit each, plus 2's bit below its leading one
    x = np.array([[1, 2] * 5] * 2)
    assert entropy_bits(x, p) == pytest.approx(20.0 + 10.0)
    # sign and run are part of the symbol: (0, 5), (0, -5), (1, 5), (1, -5) -> two bits each
    x = np.array([[5, -5, 0, 5, 0, -5]])
    assert entropy_bits(x, p) == pytest.approx(4 * 2.0 + 4 * 2.0)
    # values uniform in [2**14, 2**15): 14 bits each on a small map (not log2 of the pairs)
    rng = np.random.default_rng(0)
    v = rng.integers(1 << 14, 1 << 15, size=(1, 200))
    assert entropy_bits(v, p) == pytest.approx(14 * 200)


def _network(name, p, seed=0):
    layers, ws, xs, goldens = network_data(p, list(NETWORKS[name]), seed)
    return [map_layer(layer, p) for layer in layers], xs[0], ws, goldens, xs


@pytest.mark.parametrize("name", ["alexnet-mini", "lenet5"])
def test_executor_through_compressed_layers(name):
    maps, x, ws, goldens, xs = _network(name, TINY)
    net = build_network(maps, x, ws, rlc=True)
    whole = Program(descriptors=net.descriptors, dram=net.dram, in_base=0, filt_base=0,
                    out_base=0, out_shape=(1, 1, 1, 1), params=TINY)
    image, cnt = execute(whole, TINY, counters=True)
    for prog, g in zip(net.programs, goldens):
        assert prog.out_rlc is not None
        assert np.array_equal(prog.output(image), g)
        region = image[prog.out_base:prog.out_base + prog.out_words]
        assert region == encode_tensor(g, prog.out_rlc, TINY)   # the write-back's exact image
    assert [d.in_rlc for d in net.descriptors[:3]] == [False] * 3      # first input plain
    assert all(d.in_rlc for d in net.programs[1].descriptors)
    # the model's DRAM words (data-dependent for compressed maps) equal the executor's
    model = [estimate(m, ifmap=xi, in_rlc=pr.in_rlc, out_rlc=pr.out_rlc, ofmap=g)
             for m, xi, pr, g in zip(maps, xs, net.programs, goldens)]
    for key in ("dram_read_words", "dram_write_words", "glb_writes", "glb_reads"):
        assert sum(getattr(e, key) for e in model) == cnt[key], key
