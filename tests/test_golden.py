"""Tests of the golden model: it must be right, or it will bless wrong hardware.

References here are written independently of tb.golden (float64 direct sums, Python-int
rounding, a pair unpacker of the RLC word format), so a shared mistake is unlikely.
"""

import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tb import golden
from tb.golden import (
    conv2d,
    conv2d_layer,
    pe_row,
    random_activations,
    random_weights,
    requantize,
    rlc_decode,
    rlc_encode,
    rlc_pairs_per_word,
    rlc_stats,
    wrap_signed,
)

FLAG = 1 << 63  # last-word flag of the default 64-bit word


# --------------------------------------------------------------------------------------------
# independent references


def unpack_pairs(words, run_bits=5, level_bits=16, word_bits=64):
    """All pair slots of all words as (run, signed level), read straight from the bit layout."""
    pair_bits = run_bits + level_bits
    per_word = (word_bits - 1) // pair_bits
    pairs = []
    for word in words:
        for slot in range(per_word):
            chunk = (word >> (slot * pair_bits)) % (1 << pair_bits)
            run = chunk % (1 << run_bits)
            level = chunk >> run_bits
            if level >= 1 << (level_bits - 1):
                level -= 1 << level_bits
            pairs.append((run, level))
    return pairs


def expected_pair_count(values, run_bits):
    """Pairs the format needs: one per nonzero, plus one per (max_run+1) zeros split off."""
    block = 1 << run_bits  # max_run + 1 zeros per (max_run, 0) pair
    count, gap = 0, 0
    for v in values:
        if v == 0:
            gap += 1
        else:
            count += gap // block + 1
            gap = 0
    return count + math.ceil(gap / block)


def conv2d_reference(x, w, stride, pad, groups):
    """Direct float64 sum over each output's window; padding by bounds checks, not np.pad."""
    n_, c_, h_, w_ = x.shape
    m_, cg, r_, s_ = w.shape
    e_ = (h_ + 2 * pad - r_) // stride + 1
    f_ = (w_ + 2 * pad - s_) // stride + 1
    mg = m_ // groups
    xf, wf = x.astype(np.float64), w.astype(np.float64)
    out = np.zeros((n_, m_, e_, f_))
    for n in range(n_):
        for m in range(m_):
            g = m // mg
            for e in range(e_):
                for f in range(f_):
                    total = 0.0
                    for c in range(cg):
                        for r in range(r_):
                            y = e * stride + r - pad
                            if not 0 <= y < h_:
                                continue
                            for s in range(s_):
                                xx = f * stride + s - pad
                                if 0 <= xx < w_:
                                    total += xf[n, g * cg + c, y, xx] * wf[m, c, r, s]
                    out[n, m, e, f] = total
    return out


def requantize_reference(a, shift, out_width, relu):
    """Round half up with exact rationals: floor(a / 2**shift + 1/2), then clamp."""
    q = (2 * a + (1 << shift)) // (2 << shift)  # floor((2a + 2**shift) / 2**(shift+1))
    lo, hi = -(1 << (out_width - 1)), (1 << (out_width - 1)) - 1
    q = min(max(q, lo), hi)
    return max(q, 0) if relu else q


# --------------------------------------------------------------------------------------------
# RLC


@st.composite
def rlc_case(draw):
    run_bits = draw(st.integers(2, 6))
    level_bits = draw(st.integers(4, 16))
    word_bits = draw(st.integers(run_bits + level_bits + 1, 4 * (run_bits + level_bits) + 1))
    length = draw(st.integers(0, 300))
    zero_share = draw(st.floats(0.0, 1.0))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (level_bits - 1)), (1 << (level_bits - 1)) - 1
    values = rng.integers(lo, hi, size=length, endpoint=True)
    values[rng.random(length) < zero_share] = 0
    return values, run_bits, level_bits, word_bits


@settings(max_examples=200, deadline=None)
@given(rlc_case())
def test_rlc_round_trip(case):
    values, run_bits, level_bits, word_bits = case
    kw = dict(run_bits=run_bits, level_bits=level_bits, word_bits=word_bits)
    words = rlc_encode(values, **kw)
    per_word = rlc_pairs_per_word(run_bits, level_bits, word_bits)
    npairs = expected_pair_count(values.tolist(), run_bits)
    assert len(words) == max(1, math.ceil(npairs / per_word))
    assert all(0 <= word < (1 << word_bits) for word in words)
    flags = [word >> (word_bits - 1) for word in words]
    assert flags == [0] * (len(words) - 1) + [1]
    decoded = rlc_decode(words, len(values), **kw)
    assert decoded.dtype == np.int64
    np.testing.assert_array_equal(decoded, values)
    stats = rlc_stats(values, **kw)
    assert stats["pairs"] == npairs
    assert stats["words"] == len(words)
    assert stats["compressed_bits"] == len(words) * word_bits
    assert stats["raw_bits"] == len(values) * level_bits


@pytest.mark.parametrize(
    "zeros, pairs",
    [
        (31, [(31, 7)]),
        (32, [(31, 0), (0, 7)]),
        (33, [(31, 0), (1, 7)]),
        (64, [(31, 0), (31, 0), (0, 7)]),
    ],
)
def test_rlc_long_runs_before_a_value(zeros, pairs):
    values = [0] * zeros + [7]
    words = rlc_encode(values)
    assert unpack_pairs(words)[: len(pairs)] == pairs
    assert len(words) == math.ceil(len(pairs) / 3)
    np.testing.assert_array_equal(rlc_decode(words, len(values)), values)


@pytest.mark.parametrize(
    "zeros, pairs",
    [
        (3, [(0, 7), (2, 0)]),
        (31, [(0, 7), (30, 0)]),
        (32, [(0, 7), (31, 0)]),
        (33, [(0, 7), (31, 0), (0, 0)]),
        (64, [(0, 7), (31, 0), (31, 0)]),
    ],
)
def test_rlc_trailing_zeros(zeros, pairs):
    values = [7] + [0] * zeros
    words = rlc_encode(values)
    assert unpack_pairs(words)[: len(pairs)] == pairs
    np.testing.assert_array_equal(rlc_decode(words, len(values)), values)


def test_rlc_all_zero_and_no_zero_streams():
    words = rlc_encode(np.zeros(96, dtype=np.int64))  # three full (31, 0) pairs, one word
    assert unpack_pairs(words) == [(31, 0)] * 3
    assert words == [FLAG | sum((31 << (21 * i)) for i in range(3))]
    np.testing.assert_array_equal(rlc_decode(words, 96), np.zeros(96))

    dense = np.arange(1, 8)  # seven nonzeros: seven (0, v) pairs, three words
    words = rlc_encode(dense)
    assert len(words) == 3
    assert unpack_pairs(words)[:7] == [(0, v) for v in range(1, 8)]
    np.testing.assert_array_equal(rlc_decode(words, 7), dense)


def test_rlc_empty_stream():
    assert rlc_encode([]) == [FLAG]
    assert rlc_decode([FLAG], 0).shape == (0,)
    assert rlc_stats([])["words"] == 1
    with pytest.raises(ValueError, match="empty stream"):
        rlc_decode([FLAG | 5], 0)


def test_rlc_stream_ending_mid_word():
    values = [1, 2, 3, 4]  # four pairs: word 0 full, word 1 holds one pair
    words = rlc_encode(values)
    assert len(words) == 2
    assert words[0] == 1 << 5 | 2 << 26 | 3 << 47  # three (0, v) pairs, no flag
    assert words[1] == FLAG | 4 << 5  # slots 1 and 2 all zero
    # a junk unused slot is refused
    with pytest.raises(ValueError, match="unused"):
        rlc_decode([words[0], words[1] | 1 << 21], 4)


def test_rlc_last_flag_only_on_final_word():
    rng = np.random.default_rng(1)
    values = rng.integers(1, 100, size=40)  # 40 pairs: 13 full words and one with one pair
    words = rlc_encode(values)
    assert len(words) == 14
    assert [w >> 63 for w in words] == [0] * 13 + [1]


def test_rlc_hand_computed_words():
    # [0, 0, 5, -2] -> pairs (2, 5), (0, -2):
    #   bits 0..4 run 2, bits 5..20 level 5  -> 0x2 | 0x5 << 5 = 0xA2
    #   bits 21..25 run 0, bits 26..41 0xFFFE -> 0x3FF_F800_0000
    #   bit 63 last flag
    assert rlc_encode([0, 0, 5, -2]) == [0x8000_03FF_F800_00A2]
    # [1, 0, -32768, 32767] -> (0, 1), (1, -32768), (0, 32767), one full word:
    #   0x20 | (1 | 0x8000 << 5) << 21 | (0x7FFF << 5) << 42 | flag
    assert rlc_encode([1, 0, -32768, 32767]) == [0xBFFF_8200_0020_0020]
    # small format: run 2 bits, level 4 bits, 16-bit word -> 2 pairs per word
    # [0, 0, 0, -8, 0, 0, 0, 0] -> (3, -8), (3, 0): 0b1000_11 | 0b0000_11 << 6 | flag
    assert rlc_encode([0, 0, 0, -8, 0, 0, 0, 0], run_bits=2, level_bits=4, word_bits=16) == [
        0b1000_0000_1110_0011
    ]


def test_rlc_decoder_errors():
    words = rlc_encode(np.arange(1, 11))  # 10 pairs: 4 words
    assert len(words) == 4
    with pytest.raises(ValueError, match="missing"):
        rlc_decode(words[:-1] + [words[-1] & ~FLAG], 10)
    with pytest.raises(ValueError, match="earlier"):
        rlc_decode([words[0] | FLAG] + words[1:], 10)
    truncated = words[:2] + [words[2] | FLAG]  # properly flagged but short
    with pytest.raises(ValueError, match="ran out"):
        rlc_decode(truncated, 10)
    # the two free slots of the last word read as (0, 0) pairs, so count 12 still decodes
    np.testing.assert_array_equal(rlc_decode(words, 12), list(range(1, 11)) + [0, 0])
    with pytest.raises(ValueError, match="ran out"):
        rlc_decode(words, 13)
    with pytest.raises(ValueError, match="left over"):
        rlc_decode(words, 3)
    with pytest.raises(ValueError, match="overshoots"):
        rlc_decode(rlc_encode([0, 0, 0, 1]), 2)
    with pytest.raises(ValueError, match="words"):
        rlc_decode([], 0)
    with pytest.raises(ValueError, match=r"words\[0\]"):
        rlc_decode([1 << 64], 1)
    # 13-bit pairs in a 32-bit word: two pairs in bits 0..25, bits 26..30 are padding
    small = dict(run_bits=5, level_bits=8, word_bits=32)
    full = rlc_encode([1, 2], **small)
    assert len(full) == 1 and rlc_decode(full, 2, **small).tolist() == [1, 2]
    with pytest.raises(ValueError, match="padding"):
        rlc_decode([full[0] | 1 << 28], 2, **small)


def test_rlc_argument_errors():
    with pytest.raises(ValueError, match="values holds 32768"):
        rlc_encode([1, 32768])
    with pytest.raises(ValueError, match="values holds -9"):
        rlc_encode([-9], level_bits=4)
    with pytest.raises(ValueError, match="word_bits=21"):
        rlc_pairs_per_word(5, 16, 21)
    assert rlc_pairs_per_word(5, 16, 22) == 1
    assert rlc_pairs_per_word(5, 16, 64) == 3
    with pytest.raises(ValueError, match="run_bits=0"):
        rlc_encode([1], run_bits=0)
    with pytest.raises(ValueError, match="dtype float64"):
        rlc_encode(np.array([1.5]))
    with pytest.raises(ValueError, match="count=-1"):
        rlc_decode([FLAG], -1)


def test_rlc_stats_counts():
    stats = rlc_stats(np.array([0, 0, 5, -2, 0, 0, 0]))
    assert stats == {
        "count": 7,
        "pairs": 3,
        "words": 1,
        "raw_bits": 7 * 16,
        "compressed_bits": 64,
    }


# --------------------------------------------------------------------------------------------
# conv2d


@st.composite
def conv_case(draw):
    groups = draw(st.integers(1, 3))
    cg, mg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    r, s = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride, pad = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, r - 2 * pad), 7))
    w = draw(st.integers(max(1, s - 2 * pad), 7))
    n = draw(st.integers(1, 2))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(-8, 8, size=(n, groups * cg, h, w))
    k = rng.integers(-8, 8, size=(groups * mg, cg, r, s))
    return x, k, stride, pad, groups


@settings(max_examples=50, deadline=None)
@given(conv_case())
def test_conv2d_matches_direct_sum(case):
    x, k, stride, pad, groups = case
    out = conv2d(x, k, stride=stride, pad=pad, groups=groups)
    ref = conv2d_reference(x, k, stride, pad, groups)
    assert out.dtype == np.int64
    assert out.shape == ref.shape
    np.testing.assert_array_equal(out, ref)


def test_conv2d_known_values():
    x = np.arange(16).reshape(1, 1, 4, 4)
    k = np.array([[[[1, 0], [0, -1]]]])  # x[y, x] - x[y+1, x+1] = -5 everywhere
    np.testing.assert_array_equal(conv2d(x, k), np.full((1, 1, 3, 3), -5))
    ones = np.ones((1, 1, 3, 3), dtype=np.int64)
    out = conv2d(np.ones((1, 1, 3, 3), dtype=np.int8), ones, pad=1)
    np.testing.assert_array_equal(out[0, 0], [[4, 6, 4], [6, 9, 6], [4, 6, 4]])


def test_conv2d_groups_use_their_own_channels():
    x = np.zeros((1, 4, 1, 1), dtype=np.int64)
    x[0, :, 0, 0] = [1, 10, 100, 1000]
    k = np.ones((4, 2, 1, 1), dtype=np.int64)  # groups=2: filters 0,1 -> ch 0,1; 2,3 -> ch 2,3
    np.testing.assert_array_equal(conv2d(x, k, groups=2)[0, :, 0, 0], [11, 11, 1100, 1100])


def test_conv2d_extreme_16_bit_values_are_exact():
    x = np.full((1, 256, 3, 3), -(2**15), dtype=np.int64)
    k = np.full((1, 256, 3, 3), -(2**15), dtype=np.int64)
    assert conv2d(x, k)[0, 0, 0, 0] == 256 * 9 * 2**30  # beyond float32 and int32


def test_conv2d_alexnet_conv4_is_fast():
    rng = np.random.default_rng(4)
    x = random_activations(rng, (1, 384, 13, 13), width=16, zero_fraction=0.8)
    k = random_weights(rng, (384, 192, 3, 3), width=16)
    start = time.perf_counter()
    out = conv2d(x, k, pad=1, groups=2)
    elapsed = time.perf_counter() - start
    assert out.shape == (1, 384, 13, 13)
    assert elapsed < 2.0, f"conv2d took {elapsed:.2f} s"
    # spot checks against a direct sum (output 300 is in group 1: channels 192..383)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for m, e, f in [(0, 0, 0), (300, 6, 12), (383, 12, 5)]:
        g = m // 192
        window = xp[0, g * 192:(g + 1) * 192, e:e + 3, f:f + 3]
        assert out[0, m, e, f] == int((window.astype(object) * k[m].astype(object)).sum())


def test_conv2d_errors():
    x = np.zeros((1, 4, 5, 5), dtype=np.int64)
    with pytest.raises(ValueError, match="output would be empty"):
        conv2d(x, np.zeros((2, 4, 6, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="output would be empty"):
        conv2d(x, np.zeros((2, 4, 3, 7), dtype=np.int64), pad=0)
    with pytest.raises(ValueError, match="groups=3 does not divide C=4"):
        conv2d(x, np.zeros((3, 1, 3, 3), dtype=np.int64), groups=3)
    with pytest.raises(ValueError, match="groups=2 does not divide M=3"):
        conv2d(x, np.zeros((3, 2, 3, 3), dtype=np.int64), groups=2)
    with pytest.raises(ValueError, match=r"weights.shape\[1\]=4"):
        conv2d(x, np.zeros((2, 4, 3, 3), dtype=np.int64), groups=2)
    with pytest.raises(ValueError, match="stride=0"):
        conv2d(x, np.zeros((2, 4, 3, 3), dtype=np.int64), stride=0)
    with pytest.raises(ValueError, match="pad=-1"):
        conv2d(x, np.zeros((2, 4, 3, 3), dtype=np.int64), pad=-1)
    with pytest.raises(ValueError, match="ifmap has dtype float64"):
        conv2d(x.astype(float), np.zeros((2, 4, 3, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="ifmap has shape"):
        conv2d(x[0], np.zeros((2, 4, 3, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="int64"):
        big = np.full((1, 4, 3, 3), 2**31, dtype=np.int64)
        conv2d(big, big)
    assert conv2d(x, np.zeros((2, 4, 5, 5), dtype=np.int64)).shape == (1, 2, 1, 1)


# --------------------------------------------------------------------------------------------
# requantize


def test_requantize_half_way_rounds_up():
    np.testing.assert_array_equal(requantize([5, -5, -1, 1, 3, -3], shift=1, out_width=16),
                                  [3, -2, 0, 1, 2, -1])
    # 10 / 4 = 2.5 -> 3, -10 / 4 = -2.5 -> -2, -2 / 4 = -0.5 -> 0, -6 / 4 = -1.5 -> -1
    np.testing.assert_array_equal(requantize([10, -10, -2, -6, 9, -9], shift=2, out_width=16),
                                  [3, -2, 0, -1, 2, -2])


def test_requantize_shift_zero_is_identity():
    acc = np.array([-128, -1, 0, 1, 127])
    out = requantize(acc, shift=0, out_width=8)
    np.testing.assert_array_equal(out, acc)
    assert out.dtype == np.int64


def test_requantize_saturates_at_both_ends():
    np.testing.assert_array_equal(
        requantize([-129, -128, 127, 128, 10**15, -(10**15)], shift=0, out_width=8),
        [-128, -128, 127, 127, 127, -128],
    )
    np.testing.assert_array_equal(requantize([2**40, -(2**40)], shift=4, out_width=16),
                                  [32767, -32768])
    # rounding can push a value over the top: 255.5 -> 256 -> saturates to 255 at 9 bits
    assert requantize([511], shift=1, out_width=9)[0] == 255
    assert requantize([2**62 - 1], shift=62, out_width=2)[0] == 1


def test_requantize_relu():
    np.testing.assert_array_equal(
        requantize([-300, -3, -1, 0, 1, 3, 300], shift=1, out_width=8, relu=True),
        [0, 0, 0, 0, 1, 2, 127],
    )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(-(2**50), 2**50), min_size=1, max_size=20),
    st.integers(0, 62),
    st.integers(2, 32),
    st.booleans(),
)
def test_requantize_matches_exact_rounding(acc, shift, out_width, relu):
    out = requantize(np.array(acc, dtype=np.int64), shift=shift, out_width=out_width, relu=relu)
    assert out.tolist() == [requantize_reference(a, shift, out_width, relu) for a in acc]


def test_requantize_errors():
    with pytest.raises(ValueError, match="shift=63"):
        requantize([1], shift=63, out_width=8)
    with pytest.raises(ValueError, match="shift=-1"):
        requantize([1], shift=-1, out_width=8)
    with pytest.raises(ValueError, match="out_width=1"):
        requantize([1], shift=0, out_width=1)
    with pytest.raises(ValueError, match="out_width=33"):
        requantize([1], shift=0, out_width=33)
    with pytest.raises(ValueError, match="acc holds"):
        requantize([2**63 - 1], shift=1, out_width=8)
    with pytest.raises(ValueError, match="acc has dtype"):
        requantize([1.0], shift=0, out_width=8)


def test_conv2d_layer_is_conv_then_requantize():
    rng = np.random.default_rng(7)
    x = random_activations(rng, (2, 4, 6, 6), width=8, zero_fraction=0.3)
    k = random_weights(rng, (6, 2, 3, 3), width=8)
    acc = conv2d(x, k, stride=2, pad=1, groups=2)
    out = conv2d_layer(x, k, stride=2, pad=1, groups=2, shift=7, out_width=8, relu=True)
    np.testing.assert_array_equal(out, requantize(acc, shift=7, out_width=8, relu=True))
    assert out.min() == 0 and out.max() > 0


# --------------------------------------------------------------------------------------------
# pe_row


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 4), st.integers(1, 4), st.integers(1, 5), st.integers(1, 3),
    st.integers(0, 8), st.integers(0, 2**32 - 1),
)
def test_pe_row_is_a_one_row_conv2d(p, q, s, stride, extra, seed):
    rng = np.random.default_rng(seed)
    width = s + extra
    filters = rng.integers(-128, 128, size=(p, q, s))
    rows = rng.integers(-128, 128, size=(q, width))
    out = pe_row(filters, rows, stride=stride)
    ref = conv2d(rows[None, :, None, :], filters[:, :, None, :], stride=stride)[0, :, 0, :]
    assert out.shape == (p, (width - s) // stride + 1)
    np.testing.assert_array_equal(out, ref)
    psum = rng.integers(-1000, 1000, size=out.shape)
    np.testing.assert_array_equal(pe_row(filters, rows, stride=stride, psum_in=psum), ref + psum)


def test_pe_row_column_accumulation_gives_conv2d_rows():
    # the RS column: PE i adds filter row i x ifmap row e*stride+i onto the psum from below
    rng = np.random.default_rng(3)
    x = rng.integers(-50, 50, size=(1, 3, 9, 9))
    k = rng.integers(-50, 50, size=(4, 3, 3, 3))
    full = conv2d(x, k, stride=2)
    for e in range(full.shape[2]):
        psum = None
        for i in range(3):
            psum = pe_row(k[:, :, i, :], x[0, :, 2 * e + i, :], stride=2, psum_in=psum)
        np.testing.assert_array_equal(psum, full[0, :, e, :])


def test_pe_row_known_values_and_errors():
    out = pe_row([[[1, 2, 3]]], [[1, 0, 0, 1, 0]], stride=1)
    np.testing.assert_array_equal(out, [[1, 3, 2]])  # windows [1,0,0] [0,0,1] [0,1,0]
    np.testing.assert_array_equal(pe_row([[[1, 2, 3]]], [[1, 0, 0, 1, 0]], stride=2), [[1, 2]])
    with pytest.raises(ValueError, match="output would be empty"):
        pe_row(np.ones((1, 1, 4), dtype=int), np.ones((1, 3), dtype=int))
    with pytest.raises(ValueError, match=r"ifmap_rows.shape\[0\]=2"):
        pe_row(np.ones((1, 1, 2), dtype=int), np.ones((2, 3), dtype=int))
    with pytest.raises(ValueError, match="psum_in has shape"):
        pe_row(np.ones((1, 1, 2), dtype=int), np.ones((1, 3), dtype=int),
               psum_in=np.zeros((1, 3), dtype=int))
    with pytest.raises(ValueError, match="stride=0"):
        pe_row(np.ones((1, 1, 2), dtype=int), np.ones((1, 3), dtype=int), stride=0)


# --------------------------------------------------------------------------------------------
# wrap_signed


def test_wrap_signed_known_values():
    np.testing.assert_array_equal(
        wrap_signed(np.array([127, 128, 255, 256, -128, -129, -256]), 8),
        [127, -128, -1, 0, -128, 127, 0],
    )
    assert wrap_signed(2**64 + 5, 64) == 5
    assert wrap_signed(2**63, 64) == -(2**63)
    assert wrap_signed(3, 2) == -1
    assert wrap_signed(1, 1) == -1
    big = np.array([2**63 - 1, -(2**63)], dtype=np.int64)
    np.testing.assert_array_equal(wrap_signed(big, 64), big)
    np.testing.assert_array_equal(wrap_signed(big, 63), [-1, 0])
    with pytest.raises(ValueError, match="width=0"):
        wrap_signed(1, 0)
    with pytest.raises(ValueError, match="width=65"):
        wrap_signed(1, 65)


@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=10), st.integers(1, 64))
def test_wrap_signed_is_congruent_and_in_range(xs, width):
    out = wrap_signed(np.array(xs, dtype=np.int64), width)
    for x, y in zip(xs, out.tolist()):
        assert -(2 ** (width - 1)) <= y < 2 ** (width - 1)
        assert (x - y) % (2**width) == 0
        assert wrap_signed(x, width) == y  # the Python-int path agrees


# --------------------------------------------------------------------------------------------
# stimulus


def test_random_activations_range_zeros_and_extremes():
    rng = np.random.default_rng(0)
    a = random_activations(rng, (4, 1000), width=4, zero_fraction=0.25)
    assert a.dtype == np.int64 and a.shape == (4, 1000)
    assert a.min() == -8 and a.max() == 7  # both extremes reached
    assert (a == 0).sum() == 1000
    assert set(np.unique(a).tolist()) == set(range(-8, 8))
    w = random_weights(rng, 5000, width=3)
    assert (w == 0).sum() == 0 and w.min() == -4 and w.max() == 3
    assert (random_weights(rng, (3, 3), width=8, zero_fraction=1.0) == 0).all()
    assert random_activations(rng, (0, 5), width=8, zero_fraction=0.5).shape == (0, 5)
    again = random_activations(np.random.default_rng(0), (4, 1000), width=4, zero_fraction=0.25)
    np.testing.assert_array_equal(a, again)  # reproducible from the seed


def test_random_stimulus_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="zero_fraction=1.5"):
        random_activations(rng, 4, width=8, zero_fraction=1.5)
    with pytest.raises(ValueError, match="width=1"):
        random_weights(rng, 4, width=1)
    with pytest.raises(ValueError, match="rng="):
        random_weights(np.random.RandomState(0), 4, width=8)
    with pytest.raises(ValueError, match=r"shape\[1\]=-2"):
        random_weights(rng, (3, -2), width=8)


def test_module_exports():
    assert set(golden.__all__) >= {
        "conv2d", "requantize", "conv2d_layer", "pe_row", "wrap_signed", "random_activations",
        "random_weights", "rlc_encode", "rlc_decode", "rlc_pairs_per_word", "rlc_stats",
    }
