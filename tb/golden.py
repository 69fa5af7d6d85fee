"""Bit-exact golden model of rowstat's arithmetic and RLC format.

Number format
-------------
Activations and weights are signed two's-complement integers of ``data_width`` bits. Products
are exact, and partial sums are exact integers: here they are numpy ``int64``, so every
accumulation must fit in int64. The functions check a worst-case bound (number of terms times
the largest magnitudes) and raise ValueError rather than wrap silently; the hardware's narrower
``psum_width`` register is modelled separately with :func:`wrap_signed`, so a test can show
what a too-narrow register would do.

An output is ``saturate(round_half_up(acc / 2**shift))`` in ``out_width`` signed bits, with an
optional ReLU (dynamic fixed point, one shift per layer). Rounding adds half an LSB and then
shifts arithmetically (floor), so ties go towards +infinity: 2.5 -> 3, -2.5 -> -2.

RLC is the Eyeriss run-length format, parameterised; see :func:`rlc_encode`.

All public functions validate their arguments and raise ValueError naming the argument, its
value and the allowed range, because a wrong golden model would silently bless wrong hardware.
"""

from __future__ import annotations

import numbers

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "conv2d",
    "requantize",
    "conv2d_layer",
    "pe_row",
    "wrap_signed",
    "random_activations",
    "random_weights",
    "rlc_pairs_per_word",
    "rlc_encode",
    "rlc_decode",
    "rlc_stats",
]

INT64_MAX = (1 << 63) - 1


# --------------------------------------------------------------------------------------------
# argument checking


def _check_int(name, value, lo, hi=None):
    """Return ``value`` as int if it is an integer in [lo, hi]; bool is refused (a likely slip)."""
    allowed = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}={value!r} must be an integer {allowed}")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{name}={value} out of range: allowed {allowed}")
    return value


def _int_array(name, x, ndim=None):
    """Convert to int64, refusing floats and values outside int64 instead of rounding them."""
    arr = np.asarray(x)
    if arr.size == 0 and arr.dtype.kind not in "iu":
        arr = arr.astype(np.int64)  # np.asarray([]) is float64; an empty list is fine
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} has dtype {arr.dtype}: allowed integer dtypes only")
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > INT64_MAX:
        raise ValueError(f"{name} holds {int(arr.max())}: allowed values up to {INT64_MAX} (int64)")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} has shape {arr.shape}: allowed {ndim}-D arrays only")
    return arr.astype(np.int64, copy=False)


def _max_abs(arr):
    return max(abs(int(arr.max())), abs(int(arr.min()))) if arr.size else 0


def _check_fits_int64(what, bound):
    if bound > INT64_MAX:
        raise ValueError(
            f"{what}: worst-case magnitude {bound} exceeds int64 (allowed <= {INT64_MAX}); "
            "use narrower data"
        )


# --------------------------------------------------------------------------------------------
# convolution and requantization


def conv2d(ifmap, weights, *, stride=1, pad=0, groups=1) -> np.ndarray:
    """Exact integer 2-D convolution (cross-correlation, as in CNNs), NCHW x MCRS -> NMEF int64.

    Output channel m reads the input channels of group ``m // (M // groups)``; padding is
    zeros on all four sides. Each group is one im2col matrix product, so AlexNet-size layers
    take a fraction of a second.
    """
    x = _int_array("ifmap", ifmap, ndim=4)
    w = _int_array("weights", weights, ndim=4)
    stride = _check_int("stride", stride, 1)
    pad = _check_int("pad", pad, 0)
    groups = _check_int("groups", groups, 1)
    n, c, h, wd = x.shape
    m, cg, r, s = w.shape
    if c % groups:
        raise ValueError(f"groups={groups} does not divide C={c} (ifmap channels)")
    if m % groups:
        raise ValueError(f"groups={groups} does not divide M={m} (filters)")
    if cg != c // groups:
        raise ValueError(
            f"weights.shape[1]={cg} out of range: allowed C//groups = {c}//{groups} = {c // groups}"
        )
    if r < 1 or s < 1:
        raise ValueError(f"weights has shape {w.shape}: allowed R >= 1 and S >= 1")
    e = (h + 2 * pad - r) // stride + 1
    f = (wd + 2 * pad - s) // stride + 1
    if e < 1 or f < 1:
        raise ValueError(
            f"the output would be empty: E={e}, F={f} from H={h}, W={wd}, R={r}, S={s}, "
            f"stride={stride}, pad={pad} (allowed E >= 1 and F >= 1)"
        )
    _check_fits_int64("conv2d accumulation", cg * r * s * _max_abs(x) * _max_abs(w))

    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    # windows: [N, C, E, F, R, S], a view (no copy until the reshape below)
    win = sliding_window_view(xp, (r, s), axis=(2, 3))[:, :, ::stride, ::stride][:, :, :e, :f]
    mg = m // groups
    out = np.empty((n, m, e, f), dtype=np.int64)
    for g in range(groups):
        cols = win[:, g * cg:(g + 1) * cg].transpose(0, 2, 3, 1, 4, 5).reshape(n, e * f, cg * r * s)
        kern = w[g * mg:(g + 1) * mg].reshape(mg, cg * r * s)
        out[:, g * mg:(g + 1) * mg] = (cols @ kern.T).transpose(0, 2, 1).reshape(n, mg, e, f)
    return out


def requantize(acc, *, shift, out_width, relu=False) -> np.ndarray:
    """Scale an accumulator down by 2**shift with round-half-up, saturate, optionally ReLU."""
    a = _int_array("acc", acc)
    shift = _check_int("shift", shift, 0, 62)
    out_width = _check_int("out_width", out_width, 2, 32)
    if shift:
        half = 1 << (shift - 1)
        if a.size and int(a.max()) > INT64_MAX - half:
            raise ValueError(
                f"acc holds {int(a.max())}: allowed <= {INT64_MAX - half} so that rounding "
                f"with shift={shift} fits int64"
            )
        a = (a + half) >> shift
    lo, hi = -(1 << (out_width - 1)), (1 << (out_width - 1)) - 1
    out = np.clip(a, lo, hi)
    if relu:
        out = np.maximum(out, 0)
    return out.astype(np.int64, copy=False)


def conv2d_layer(ifmap, weights, *, stride=1, pad=0, groups=1, shift=0, out_width, relu=False):
    """One layer as the accelerator computes it: exact convolution, then requantization."""
    acc = conv2d(ifmap, weights, stride=stride, pad=pad, groups=groups)
    return requantize(acc, shift=shift, out_width=out_width, relu=relu)


def pe_row(filters, ifmap_rows, *, stride=1, psum_in=None) -> np.ndarray:
    """The row-stationary PE's 1-D primitive: p filter rows x q ifmap rows -> p psum rows.

    out[f, x] = sum_{c<q, s<S} filters[f, c, s] * ifmap_rows[c, x*stride + s] (+ psum_in[f, x]),
    which is what one PE accumulates for p interleaved filters and q interleaved channels.
    """
    flt = _int_array("filters", filters, ndim=3)
    rows = _int_array("ifmap_rows", ifmap_rows, ndim=2)
    stride = _check_int("stride", stride, 1)
    p, q, s = flt.shape
    if rows.shape[0] != q:
        raise ValueError(
            f"ifmap_rows.shape[0]={rows.shape[0]} out of range: allowed q={q} (filters.shape[1])"
        )
    if s < 1:
        raise ValueError(f"filters has shape {flt.shape}: allowed S >= 1")
    width = rows.shape[1]
    f = (width - s) // stride + 1
    if f < 1:
        raise ValueError(
            f"the output would be empty: F={f} from W={width}, S={s}, stride={stride} "
            "(allowed F >= 1)"
        )
    bound = q * s * _max_abs(flt) * _max_abs(rows)
    psum = None
    if psum_in is not None:
        psum = _int_array("psum_in", psum_in, ndim=2)
        if psum.shape != (p, f):
            raise ValueError(f"psum_in has shape {psum.shape}: allowed ({p}, {f})")
        bound += _max_abs(psum)
    _check_fits_int64("pe_row accumulation", bound)
    win = sliding_window_view(rows, s, axis=1)[:, ::stride][:, :f]  # [q, F, S]
    out = np.einsum("pqs,qfs->pf", flt, win).astype(np.int64, copy=False)
    if psum is not None:
        out = out + psum
    return out


def wrap_signed(x, width):
    """Two's-complement wrap to ``width`` bits: what a ``width``-bit psum register would hold.

    A Python int gives a Python int (so sums wider than int64 can be wrapped too); anything
    else gives an int64 array.
    """
    width = _check_int("width", width, 1, 64)
    if isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.integer)):
        x = int(x)
        return ((x + (1 << (width - 1))) % (1 << width)) - (1 << (width - 1))
    a = _int_array("x", x)
    unused = np.int64(64 - width)
    return (a << unused) >> unused  # drop the high bits, then sign-extend from bit width-1


# --------------------------------------------------------------------------------------------
# stimulus


def _random_signed(rng, shape, width, zero_fraction):
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng={rng!r} must be a numpy.random.Generator (np.random.default_rng)")
    width = _check_int("width", width, 2, 32)
    if isinstance(zero_fraction, bool) or not isinstance(zero_fraction, numbers.Real) or not (
        0.0 <= float(zero_fraction) <= 1.0
    ):
        raise ValueError(f"zero_fraction={zero_fraction!r} out of range: allowed [0.0, 1.0]")
    if isinstance(shape, numbers.Integral):
        shape = (shape,)
    shape = tuple(_check_int(f"shape[{i}]", d, 0) for i, d in enumerate(shape))
    size = int(np.prod(shape, dtype=np.int64))
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    # Draw from the nonzero values only, then place an exact number of zeros: the zero share
    # is then exactly what the caller asked for (up to rounding to whole elements).
    vals = rng.integers(lo, hi, size=size, dtype=np.int64)  # [lo, hi - 1]
    vals[vals >= 0] += 1  # [0, hi-1] -> [1, hi]: uniform over the nonzero values, both extremes
    zeros = int(round(float(zero_fraction) * size))
    vals[rng.permutation(size)[:zeros]] = 0
    return vals.reshape(shape)


def random_activations(rng, shape, *, width, zero_fraction) -> np.ndarray:
    """Signed ``width``-bit activations over the full range (both extremes included) with
    exactly round(zero_fraction * size) zeros at random places, to exercise zero-gating and RLC."""
    return _random_signed(rng, shape, width, zero_fraction)


def random_weights(rng, shape, *, width, zero_fraction=0.0) -> np.ndarray:
    """Signed ``width``-bit weights, same distribution as :func:`random_activations`."""
    return _random_signed(rng, shape, width, zero_fraction)


# --------------------------------------------------------------------------------------------
# RLC codec


def _check_rlc(run_bits, level_bits, word_bits):
    run_bits = _check_int("run_bits", run_bits, 1, 32)
    level_bits = _check_int("level_bits", level_bits, 1, 64)
    word_bits = _check_int("word_bits", word_bits, 2, 4096)
    if (word_bits - 1) // (run_bits + level_bits) < 1:
        raise ValueError(
            f"word_bits={word_bits} out of range: allowed >= run_bits + level_bits + 1 = "
            f"{run_bits + level_bits + 1} so that one pair and the last-word flag fit"
        )
    return run_bits, level_bits, word_bits


def rlc_pairs_per_word(run_bits, level_bits, word_bits) -> int:
    """Pairs per word; the top bit is reserved for the last-word flag."""
    run_bits, level_bits, word_bits = _check_rlc(run_bits, level_bits, word_bits)
    return (word_bits - 1) // (run_bits + level_bits)


def _rlc_pairs(values, run_bits, level_bits):
    """Cut the flattened stream into (run, level) pairs, see :func:`rlc_encode`."""
    v = _int_array("values", values).ravel()
    lo, hi = -(1 << (level_bits - 1)), (1 << (level_bits - 1)) - 1
    if v.size and (int(v.min()) < lo or int(v.max()) > hi):
        bad = int(v.min()) if int(v.min()) < lo else int(v.max())
        raise ValueError(f"values holds {bad}: allowed [{lo}, {hi}] (level_bits={level_bits})")
    max_run = (1 << run_bits) - 1
    pairs = []
    nz = np.flatnonzero(v).tolist()
    pos = 0  # next value not yet encoded
    for i in nz + [v.size]:
        zeros = i - pos  # zeros before value i (or before the end of the stream)
        while zeros > max_run:  # (max_run, 0) = max_run zeros and a literal zero
            pairs.append((max_run, 0))
            zeros -= max_run + 1
        if i == v.size:
            if zeros:  # trailing zeros: (k, 0) = k zeros and a literal zero
                pairs.append((zeros - 1, 0))
        else:
            pairs.append((zeros, int(v[i])))
        pos = i + 1
    return pairs


def rlc_encode(values, *, run_bits=5, level_bits=16, word_bits=64) -> list[int]:
    """Encode integers in the Eyeriss run-length format; returns the words as Python ints.

    The flattened (C-order) stream becomes pairs (run, level): ``run`` zeros, then ``level``.
    A run longer than 2**run_bits - 1 is split with (max_run, 0) pairs, each worth max_run + 1
    zeros; trailing zeros end with a (k, 0) pair worth k + 1 zeros. Pair i of a word sits at
    bits [i*(run_bits+level_bits), ...), run in the low run_bits, the level's two's complement
    above it; unused slots of the last word are zero; bit word_bits-1 flags the last word.
    The count is not stored: the decoder gets it from the layer shape, as in Eyeriss.
    """
    run_bits, level_bits, word_bits = _check_rlc(run_bits, level_bits, word_bits)
    per_word = (word_bits - 1) // (run_bits + level_bits)
    pair_bits = run_bits + level_bits
    level_mask = (1 << level_bits) - 1
    pairs = _rlc_pairs(values, run_bits, level_bits)
    words = []
    for start in range(0, max(len(pairs), 1), per_word):
        word = 0
        for slot, (run, level) in enumerate(pairs[start:start + per_word]):
            word |= (run | ((level & level_mask) << run_bits)) << (slot * pair_bits)
        words.append(word)
    words[-1] |= 1 << (word_bits - 1)
    return words


def rlc_decode(words, count, *, run_bits=5, level_bits=16, word_bits=64) -> np.ndarray:
    """Decode exactly ``count`` values; strict, so malformed encoder output is caught.

    Besides running out of words and misplaced last flags, it also refuses a pair that
    overshoots ``count``, words left over after ``count`` values, and nonzero unused bits.
    An all-zero unused slot reads as the pair (0, 0), one zero, so a count that is too large
    by less than the free slots of the last word cannot be detected: the format has no length.
    """
    run_bits, level_bits, word_bits = _check_rlc(run_bits, level_bits, word_bits)
    count = _check_int("count", count, 0)
    per_word = (word_bits - 1) // (run_bits + level_bits)
    pair_bits = run_bits + level_bits
    run_mask, level_mask = (1 << run_bits) - 1, (1 << level_bits) - 1
    last_bit = 1 << (word_bits - 1)
    padding_mask = (last_bit - 1) & ~((1 << (per_word * pair_bits)) - 1)  # between pairs and flag
    words = list(words)
    if not words:
        raise ValueError("words is empty: allowed at least one word (the last-word flag)")
    for k, word in enumerate(words):
        if (
            isinstance(word, bool)
            or not isinstance(word, numbers.Integral)
            or not 0 <= int(word) < (1 << word_bits)
        ):
            raise ValueError(f"words[{k}]={word!r} out of range: allowed [0, 2**{word_bits})")
        flagged = bool(int(word) & last_bit)
        if flagged != (k == len(words) - 1):
            where = "missing on the final word" if not flagged else "set on an earlier word"
            raise ValueError(f"words[{k}]: last-word flag {where} ({len(words)} words)")

    out = np.zeros(count, dtype=np.int64)
    pos = 0
    k = 0
    if count == 0:
        k = 1  # the single flag-only word is consumed
        if words[0] != last_bit:
            raise ValueError(
                f"words[0]={int(words[0]):#x}: an empty stream must be exactly the last flag "
                f"{last_bit:#x}"
            )
    while pos < count:
        if k >= len(words):
            raise ValueError(
                f"words ran out after {pos} of count={count} values ({len(words)} words)"
            )
        word = int(words[k])
        for slot in range(per_word):
            if pos == count:  # rest of the last word must be empty
                if word & (last_bit - 1) & ~((1 << (slot * pair_bits)) - 1):
                    raise ValueError(f"words[{k}]: unused pair slots {slot}.. are not zero")
                break
            pair = word >> (slot * pair_bits)
            run, level = pair & run_mask, (pair >> run_bits) & level_mask
            if level >> (level_bits - 1):
                level -= 1 << level_bits
            if pos + run + 1 > count:
                raise ValueError(
                    f"words[{k}] pair {slot}: run {run} + 1 overshoots count={count} at value {pos}"
                )
            pos += run  # zeros are already in place
            out[pos] = level
            pos += 1
        else:
            if word & padding_mask:
                raise ValueError(f"words[{k}]: padding bits above the pairs are not zero")
        k += 1
    if k != len(words):
        raise ValueError(f"{len(words) - k} words left over after count={count} values")
    return out


def rlc_stats(values, *, run_bits=5, level_bits=16, word_bits=64) -> dict:
    """Sizes of the encoding, for the compression figures of the performance model."""
    run_bits, level_bits, word_bits = _check_rlc(run_bits, level_bits, word_bits)
    count = int(np.asarray(values).size)
    pairs = len(_rlc_pairs(values, run_bits, level_bits))
    per_word = (word_bits - 1) // (run_bits + level_bits)
    words = max(1, -(-pairs // per_word))
    return {
        "count": count,
        "pairs": pairs,
        "words": words,
        "raw_bits": count * level_bits,
        "compressed_bits": words * word_bits,
    }
