"""RLC encoder and decoder against the golden format, in amaranth.sim, with random stalls."""

import random

import numpy as np
import pytest
from amaranth.hdl import Fragment, Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from hw.params import PRESETS
from hw.rlc import RLCDecoder, RLCEncoder
from tb.golden import rlc_decode, rlc_encode
from tb.sim_streams import stream_get, stream_put

EYERISS = dict(data_width=16, run_bits=5, word_bits=64)
SMALL = dict(data_width=8, run_bits=4, word_bits=32)
FORMATS = {"eyeriss": EYERISS, "d8r4w32": SMALL}
TIMEOUT = 20_000


def golden_kw(fmt):
    return dict(run_bits=fmt["run_bits"], level_bits=fmt["data_width"],
                word_bits=fmt["word_bits"])


def _run(dut, inputs, n_out, *, seed, in_stall, out_stall, in_port, out_port, starts):
    """Start ``dut``, feed ``inputs``, take ``n_out`` outputs, wait until ``busy`` falls.

    The consumer takes exactly ``n_out`` outputs: one missing shows up as a timeout, one
    too many as ``valid`` still high after ``busy`` fell.

    Returns (outputs, cycles from start to busy low, whether every input was taken,
    any started decoder's ``error`` when busy fell, or None without a decoder).
    """
    rng_in, rng_out = random.Random(seed), random.Random(seed + 1)
    got, cycles, fed, error, done = [], [0], [False], [None], [False]

    async def control(ctx):
        for dut_, n in starts:
            ctx.set(dut_.count, n)
            ctx.set(dut_.start, 1)
        await ctx.tick()
        for dut_, _ in starts:
            ctx.set(dut_.start, 0)
        n = 1
        while any(ctx.get(d.busy) for d, _ in starts):
            await ctx.tick()
            n += 1
            assert n < TIMEOUT, f"RLC block hung with {len(inputs)} inputs"
        cycles[0] = n
        while not done[0]:
            await ctx.tick()
            n += 1
            assert n < TIMEOUT, f"busy fell before {n_out} outputs"
        decoders = [d for d, _ in starts if isinstance(d, RLCDecoder)]
        if decoders:
            error[0] = any(ctx.get(d.error) for d in decoders)
        for _ in range(4):  # nothing more may come out
            await ctx.tick()
            assert not ctx.get(out_port.valid), "output after busy fell"

    async def producer(ctx):
        await stream_put(ctx, in_port, inputs, rng=rng_in, stall_prob=in_stall)
        fed[0] = True

    async def consumer(ctx):
        got.extend(await stream_get(ctx, out_port, n_out, rng=rng_out, stall_prob=out_stall))
        done[0] = True

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(control)
    sim.add_testbench(producer, background=True)
    sim.add_testbench(consumer)
    sim.run()
    return got, cycles[0], fed[0], error[0]


def encode(fmt, values, n_words, *, seed=0, in_stall=0.0, out_stall=0.0):
    enc = RLCEncoder(**fmt)
    values = [int(v) for v in values]
    words, cycles, fed, _ = _run(enc, values, n_words, seed=seed, in_stall=in_stall,
                                 out_stall=out_stall, in_port=enc.i, out_port=enc.o,
                                 starts=[(enc, len(values))])
    assert fed, "encoder did not take every value"
    return words, cycles


def decode(fmt, words, count, n_values=None, *, seed=0, in_stall=0.0, out_stall=0.0):
    """Returns (values, error, cycles, every word taken); expects ``n_values`` (default
    ``count``) values out."""
    dec = RLCDecoder(**fmt)
    n_values = count if n_values is None else n_values
    values, cycles, fed, error = _run(dec, list(words), n_values, seed=seed,
                                      in_stall=in_stall, out_stall=out_stall, in_port=dec.i,
                                      out_port=dec.o, starts=[(dec, count)])
    return values, error, cycles, fed  # the payload is signed: values come back signed


def check_encoder(fmt, values, **kw):
    expected = rlc_encode(np.asarray(values, dtype=np.int64), **golden_kw(fmt))
    got, cycles = encode(fmt, values, len(expected), **kw)
    assert [hex(w) for w in got] == [hex(w) for w in expected]
    return cycles


def check_decoder(fmt, values, **kw):
    words = rlc_encode(np.asarray(values, dtype=np.int64), **golden_kw(fmt))
    expected = rlc_decode(words, len(values), **golden_kw(fmt)).tolist()
    got, error, cycles, fed = decode(fmt, words, len(values), **kw)
    assert fed, "decoder did not take every word"
    assert not error, "decoder flagged an error on a well-formed stream"
    assert got == expected == [int(v) for v in values]
    return cycles


def directed_cases(fmt):
    dw, rb = fmt["data_width"], fmt["run_bits"]
    max_run = (1 << rb) - 1
    lo, hi = -(1 << (dw - 1)), (1 << (dw - 1)) - 1
    cases = {
        "empty": [],
        "single": [5],
        "single-zero": [0],
        "all-zero": [0] * 100,
        "no-zero": list(range(1, 41)),
        "extremes": [lo, hi, 0, lo, 0, 0, hi, -1, 1, lo],
        "ends-mid-word": [3, 0, 4, 0, 0, 5, 6],
    }
    for run in (max_run, max_run + 1, max_run + 2, 2 * (max_run + 1)):
        cases[f"run{run}"] = [7] + [0] * run + [-7]
        cases[f"trail{run}"] = [7] + [0] * run
        cases[f"lead{run}"] = [0] * run + [lo]
    return cases


def random_cases(fmt, n=16, seed=0):
    rng = np.random.default_rng(seed)
    dw = fmt["data_width"]
    out = []
    for k in range(n):
        share = 0.9 * k / (n - 1)  # zero shares 0 .. 0.9
        size = int(rng.integers(1, 160))
        v = rng.integers(-(1 << (dw - 1)), 1 << (dw - 1), size)
        v[rng.random(size) < share] = 0
        out.append((share, v.tolist()))
    return out


@pytest.mark.parametrize("fmt_name", FORMATS)
def test_encoder_directed(fmt_name):
    fmt = FORMATS[fmt_name]
    for i, (name, values) in enumerate(directed_cases(fmt).items()):
        stalls = [(0.0, 0.0), (0.4, 0.0), (0.0, 0.5), (0.3, 0.3)][i % 4]
        try:
            check_encoder(fmt, values, seed=i, in_stall=stalls[0], out_stall=stalls[1])
        except AssertionError as e:
            raise AssertionError(f"case {name}: {e}") from None


@pytest.mark.parametrize("fmt_name", FORMATS)
def test_encoder_random_with_stalls(fmt_name):
    fmt = FORMATS[fmt_name]
    for k, (share, values) in enumerate(random_cases(fmt, seed=len(fmt_name))):
        stalls = [(0.0, 0.0), (0.5, 0.2), (0.2, 0.6), (0.4, 0.4)][k % 4]
        try:
            check_encoder(fmt, values, seed=100 + k, in_stall=stalls[0], out_stall=stalls[1])
        except AssertionError as e:
            raise AssertionError(f"random case {k} (zero share {share:.2f}): {e}") from None


@pytest.mark.parametrize("fmt_name", FORMATS)
def test_decoder_directed_and_random(fmt_name):
    fmt = FORMATS[fmt_name]
    cases = list(directed_cases(fmt).items())
    cases += [(f"random{k}", v) for k, (_, v) in enumerate(random_cases(fmt, seed=7))]
    for i, (name, values) in enumerate(cases):
        stalls = [(0.0, 0.0), (0.4, 0.0), (0.0, 0.5), (0.3, 0.3)][i % 4]
        try:
            check_decoder(fmt, values, seed=i, in_stall=stalls[0], out_stall=stalls[1])
        except AssertionError as e:
            raise AssertionError(f"case {name}: {e}") from None


class _Loopback(wiring.Component):
    """Encoder feeding decoder: values in, values out, as between two layers via DRAM."""

    def __init__(self, fmt):
        self.enc = RLCEncoder(**fmt)
        self.dec = RLCDecoder(**fmt)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.enc = self.enc
        m.submodules.dec = self.dec
        wiring.connect(m, self.enc.o, self.dec.i)
        return m


def check_loopback(fmt, values, *, seed, stall):
    top = _Loopback(fmt)
    n = len(values)
    got, _, fed, error = _run(top, values, n, seed=seed, in_stall=stall, out_stall=stall,
                              in_port=top.enc.i, out_port=top.dec.o,
                              starts=[(top.enc, n), (top.dec, n)])
    assert fed and not error and got == values, f"round trip of {values}"


@pytest.mark.parametrize("fmt_name", FORMATS)
def test_round_trip_encoder_to_decoder(fmt_name):
    fmt = FORMATS[fmt_name]
    cases = [v for _, v in random_cases(fmt, n=8, seed=11)]
    cases += [directed_cases(fmt)[k] for k in ("empty", "all-zero", "extremes")]
    for k, values in enumerate(cases):
        check_loopback(fmt, values, seed=k, stall=0.3)


def _values_in_words(fmt, words):
    """Values a decoder produces from every pair slot of ``words`` (unused slots: one zero)."""
    pair_bits = fmt["run_bits"] + fmt["data_width"]
    per_word = (fmt["word_bits"] - 1) // pair_bits
    run_mask = (1 << fmt["run_bits"]) - 1
    return sum((w >> (s * pair_bits) & run_mask) + 1 for w in words for s in range(per_word))


@pytest.mark.parametrize("fmt_name", FORMATS)
def test_decoder_error_on_early_last_flag(fmt_name):
    """A well-formed stream of 10 values read as a longer one: the decoder reads the flagged
    word to its end, raises ``error`` and stops instead of waiting for words."""
    fmt = FORMATS[fmt_name]
    values = [4, 0, 0, -3, 0, 0, 0, 0, 9, 1]
    words = rlc_encode(values, **golden_kw(fmt))
    produced = _values_in_words(fmt, words)
    with pytest.raises(ValueError, match="words ran out"):
        rlc_decode(words, produced + 5, **golden_kw(fmt))
    got, error, _, fed = decode(fmt, words, produced + 5, produced, in_stall=0.3, out_stall=0.3)
    assert error and fed
    assert got == values + [0] * (produced - len(values))


@pytest.mark.parametrize("fmt_name", FORMATS)
def test_decoder_error_on_missing_last_flag(fmt_name):
    fmt = FORMATS[fmt_name]
    values = [random.Random(3).randrange(-50, 50) for _ in range(11)]
    words = rlc_encode(values, **golden_kw(fmt))
    words[-1] &= ~(1 << (fmt["word_bits"] - 1))
    with pytest.raises(ValueError, match="flag missing"):
        rlc_decode(words, len(values), **golden_kw(fmt))
    got, error, _, fed = decode(fmt, words, len(values), in_stall=0.2, out_stall=0.4)
    assert error and fed and got == values


def test_decoder_error_on_run_past_count_and_bad_empty_word():
    fmt = EYERISS
    words = rlc_encode([1, 0, 0, 0, 5], **golden_kw(fmt))  # pairs (0, 1), (3, 5)
    with pytest.raises(ValueError, match="overshoots"):
        rlc_decode(words, 3, **golden_kw(fmt))
    got, error, _, fed = decode(fmt, words, 3)
    assert error and fed and got == [1, 0, 0]
    with pytest.raises(ValueError, match="exactly the last flag"):
        rlc_decode([(1 << 63) | 1], 0, **golden_kw(fmt))
    got, error, _, fed = decode(fmt, [(1 << 63) | 1], 0)
    assert error and fed and got == []
    got, error, _, fed = decode(fmt, [1 << 63], 0)
    assert not error and fed and got == []


@pytest.mark.parametrize("fmt_name", FORMATS)
def test_one_value_per_cycle_without_stalls(fmt_name):
    fmt = FORMATS[fmt_name]
    per_word = (fmt["word_bits"] - 1) // (fmt["run_bits"] + fmt["data_width"])
    cases = directed_cases(fmt)
    maps = [cases["no-zero"], cases["all-zero"], cases["extremes"]]
    maps += [v for _, v in random_cases(fmt, n=4, seed=5)]
    for values in maps:
        n = len(values)
        # start, one cycle per value, the final word's transfer: n + 2, well inside the
        # n + pairs_per_word + constant budget; exact, so a lost cycle anywhere shows.
        enc_cycles = check_encoder(fmt, values)
        assert enc_cycles <= n + per_word + 3, (n, enc_cycles)
        assert enc_cycles == n + 2, (n, enc_cycles)
        # start, first word fetch, one cycle per value, last transfer: no bubble between words.
        dec_cycles = check_decoder(fmt, values)
        assert dec_cycles == n + 3, (n, dec_cycles)


@pytest.mark.parametrize("cls", [RLCEncoder, RLCDecoder])
def test_format_is_validated(cls):
    with pytest.raises(ValueError, match=r"run_bits = 0 is out of range: allowed 1\.\.32"):
        cls(data_width=16, run_bits=0, word_bits=64)
    with pytest.raises(ValueError, match=r"data_width = 65 is out of range: allowed 1\.\.64"):
        cls(data_width=65, run_bits=5, word_bits=64)
    with pytest.raises(ValueError, match=r"word_bits = 21 is out of range: allowed >= .* = 22"):
        cls(data_width=16, run_bits=5, word_bits=21)
    with pytest.raises(ValueError, match=r"word_bits = True is out of range"):
        cls(data_width=16, run_bits=5, word_bits=True)
    eyeriss = cls.from_params(PRESETS["eyeriss"])
    assert (eyeriss.data_width, eyeriss.run_bits, eyeriss.word_bits) == (16, 5, 64)
    assert eyeriss.pairs_per_word == 3
    one_pair = cls(data_width=16, run_bits=5, word_bits=22)  # no padding, one slot
    assert one_pair.pairs_per_word == 1
    for dut in (eyeriss, one_pair):  # both elaborate (and are thereby used)
        Fragment.get(dut, None)


def test_one_pair_words_without_padding():
    """1-bit runs, 4-bit levels, 6-bit words: one pair per word, no padding, max run 1."""
    fmt = dict(data_width=4, run_bits=1, word_bits=6)
    cases = [v for _, v in random_cases(fmt, n=6, seed=13)]
    cases += [[0, 0, 0, -8, 0, 7, 0, 0], [0], [0, 0], [0, 0, 0], [-8]]
    for k, values in enumerate(cases):
        check_encoder(fmt, values, seed=k, in_stall=0.3, out_stall=0.3)
        check_decoder(fmt, values, seed=k, in_stall=0.3, out_stall=0.3)
        check_loopback(fmt, values, seed=k, stall=0.2)


def test_decoder_error_is_sticky_until_the_next_start():
    fmt = SMALL
    bad = rlc_encode([1, 2, 3], **golden_kw(fmt))
    bad[-1] &= ~(1 << (fmt["word_bits"] - 1))  # missing last flag
    good = rlc_encode([0, 0, -4], **golden_kw(fmt))
    dec = RLCDecoder(**fmt)
    got, seen = [], []

    async def control(ctx):
        for words in (bad, good):
            ctx.set(dec.count, 3)
            ctx.set(dec.start, 1)
            await ctx.tick()
            ctx.set(dec.start, 0)
            seen.append(("started", ctx.get(dec.error)))
            for _ in range(100):
                if not ctx.get(dec.busy):
                    break
                await ctx.tick()
            for _ in range(5):  # the error holds while idle
                await ctx.tick()
                seen.append(("idle", ctx.get(dec.error)))

    async def producer(ctx):
        await stream_put(ctx, dec.i, bad + good)

    async def consumer(ctx):
        got.extend(await stream_get(ctx, dec.o, 6))

    sim = Simulator(dec)
    sim.add_clock(1e-8)
    sim.add_testbench(control)
    sim.add_testbench(producer, background=True)
    sim.add_testbench(consumer)
    sim.run()
    assert got == [1, 2, 3, 0, 0, -4]
    assert seen == [("started", 0)] + [("idle", 1)] * 5 + [("started", 0)] + [("idle", 0)] * 5


def test_decoder_error_on_nonzero_padding_or_unused_slot():
    """d8r4w32: two 12-bit pairs per word, 7 padding bits, the flag at bit 31."""
    fmt = SMALL
    words = rlc_encode([1, 2, 3], **golden_kw(fmt))  # [(0, 1), (0, 2)], [(0, 3), -] + flag
    padded = [words[0] | 1 << 24, words[1]]
    with pytest.raises(ValueError, match="padding bits"):
        rlc_decode(padded, 3, **golden_kw(fmt))
    # It stops after the corrupt word (a second word would never be taken, and would leave
    # the producer waiting when the simulation ends, so only the first is offered).
    got, error, _, fed = decode(fmt, padded[:1], 3, 2)
    assert error and fed and got == [1, 2]
    unused = [words[0], words[1] | 1 << 12]
    with pytest.raises(ValueError, match="unused pair slots"):
        rlc_decode(unused, 3, **golden_kw(fmt))
    got, error, _, fed = decode(fmt, unused, 3)
    assert error and fed and got == [1, 2, 3]
