"""Run-length coding of feature maps between the accelerator and DRAM.

Why: after ReLU most activations are zero, and DRAM bandwidth -- not the PE array -- bounds
many layers. Eyeriss therefore moves feature maps run-length coded (RLC): a word carries
several (run, level) pairs, ``run`` zeros followed by one ``level`` value. With the defaults
of the ``eyeriss`` preset (5-bit runs, 16-bit levels, 64-bit words) a word holds three pairs
and a last-word flag, so up to 96 activations can travel in 64 bits.

Format: :func:`tb.golden.rlc_encode` is the definition, bit for bit, and
:func:`tb.golden.rlc_decode` the strict reference reader. In short: pair ``i`` of a word sits
at bits ``[i*(run_bits+data_width), ...)`` with the run in the low ``run_bits`` and the
level's two's complement above it; a run longer than ``2**run_bits - 1`` is split with
``(max_run, 0)`` pairs (``max_run + 1`` zeros each); trailing zeros end as a ``(k, 0)`` pair;
unused slots of the final word are zero and bit ``word_bits - 1`` flags the final word. The
number of values is not in the stream: both ends get it from the layer shape (``count``).

Throughput: both blocks move one value per cycle while their output is ready.

* :class:`RLCEncoder` turns every value into at most one pair, so it never stalls its input
  for its own sake; a word leaves through a one-word output register when its slots are full
  or the stream ends. The last value always yields a pair (a trailing run ends as ``(k, 0)``
  exactly when the last value is a zero), so the end of the stream needs no extra cycle.
* :class:`RLCDecoder` emits one value per cycle and loads the next word in the cycle that
  finishes the current one, so there is no bubble between words.

Both blocks: pulse ``start`` while ``busy`` is low (a start while busy is ignored); ``count``
is sampled at ``start``; ``busy`` falls when the last output has been taken.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .params import AcceleratorParams

__all__ = ["RLCEncoder", "RLCDecoder", "rlc_format"]

#: Allowed ranges (inclusive) of the format parameters; the golden model accepts the same.
_RANGES = {
    "data_width": (1, 64),
    "run_bits":   (1, 32),
    "word_bits":  (2, 4096),
}


def rlc_format(*, data_width: int, run_bits: int, word_bits: int) -> int:
    """Validate an RLC format; returns the pairs per word."""
    for name, value in (("data_width", data_width), ("run_bits", run_bits),
                        ("word_bits", word_bits)):
        lo, hi = _RANGES[name]
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"{name} = {value!r} is out of range: allowed {lo}..{hi}")
    per_word = (word_bits - 1) // (run_bits + data_width)
    if per_word < 1:
        raise ValueError(f"word_bits = {word_bits} is out of range: allowed "
                         f">= run_bits + data_width + 1 = {run_bits + data_width + 1} "
                         f"(one pair and the last-word flag)")
    return per_word


class _RLCBase(wiring.Component):
    def __new__(cls, *args, **kwargs):
        # Validate before the object exists: an elaboratable whose __init__ raises would
        # otherwise also warn "created but never used" when it is collected.
        if not args and set(kwargs) == {"data_width", "run_bits", "word_bits"}:
            rlc_format(**kwargs)
        return super().__new__(cls, *args, **kwargs)

    def __init__(self, ports, *, data_width: int, run_bits: int, word_bits: int):
        self._per_word = rlc_format(data_width=data_width, run_bits=run_bits,
                                    word_bits=word_bits)
        self._dw = data_width
        self._rb = run_bits
        self._wb = word_bits
        super().__init__(ports)

    @classmethod
    def from_params(cls, params: AcceleratorParams):
        return cls(data_width=params.data_width, run_bits=params.rlc_run_bits,
                   word_bits=params.rlc_word_bits)

    @property
    def data_width(self) -> int:
        return self._dw

    @property
    def run_bits(self) -> int:
        return self._rb

    @property
    def word_bits(self) -> int:
        return self._wb

    @property
    def pairs_per_word(self) -> int:
        return self._per_word

    @property
    def pair_bits(self) -> int:
        return self._rb + self._dw


class RLCEncoder(_RLCBase):
    """Values in, RLC words out; see the module docstring.

    After ``start`` the encoder consumes exactly ``count`` values from ``i`` and emits the
    words :func:`tb.golden.rlc_encode` produces for them; ``count = 0`` gives the single
    flag-only word.
    """

    def __init__(self, *, data_width: int, run_bits: int, word_bits: int):
        super().__init__({
            "count": In(32),
            "start": In(1),
            "busy":  Out(1),
            "i":     In(stream.Signature(signed(data_width))),
            "o":     Out(stream.Signature(unsigned(word_bits))),
        }, data_width=data_width, run_bits=run_bits, word_bits=word_bits)

    def elaborate(self, platform):
        m = Module()
        per_word, pair_bits, rb = self._per_word, self.pair_bits, self._rb
        max_run = (1 << rb) - 1

        running = Signal()
        remaining = Signal(32)
        zrun = Signal(rb)                       # zeros seen and not yet in a pair
        acc = Signal(per_word * pair_bits)      # pairs of the word being assembled
        slot = Signal(range(per_word))
        last = Signal()                         # remaining = 1 (a register: no 32-bit compare
        #                                         on the path from a value to the word)

        m.d.comb += self.busy.eq(running | self.o.valid)

        # Any value is taken only if the output register is free (or being emptied), so a
        # value that completes a word always has somewhere to put it.
        out_free = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(running & out_free)
        take = self.i.valid & self.i.ready

        value = self.i.payload
        emit = last | (value != 0) | (zrun == max_run)
        pair = Cat(zrun, value)
        merged = Cat(*(Mux(slot == k, pair, acc[k * pair_bits:(k + 1) * pair_bits])
                       for k in range(per_word)))

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.If(take):
            m.d.sync += [remaining.eq(remaining - 1), last.eq(remaining == 2)]
            with m.If(last):
                m.d.sync += running.eq(0)
            with m.If(emit):
                m.d.sync += zrun.eq(0)
                with m.If(last | (slot == per_word - 1)):
                    m.d.sync += [self.o.valid.eq(1), acc.eq(0), slot.eq(0)]
                with m.Else():
                    m.d.sync += [acc.eq(merged), slot.eq(slot + 1)]
            with m.Else():
                m.d.sync += zrun.eq(zrun + 1)

        # The output word register follows the word being assembled whenever it is free
        # (it is read only while ``o.valid``, which is set only when a word completes): its
        # enable is the output handshake's flip-flops, not the value's zero test.
        with m.If(out_free):
            m.d.sync += self.o.payload.eq(Cat(merged, Const(0, self._wb - 1 - len(merged)),
                                              last))

        with m.If(self.start & ~self.busy):
            m.d.sync += [remaining.eq(self.count), last.eq(self.count == 1), zrun.eq(0),
                         acc.eq(0), slot.eq(0)]
            with m.If(self.count == 0):
                m.d.sync += [self.o.payload.eq(1 << (self._wb - 1)), self.o.valid.eq(1)]
            with m.Else():
                m.d.sync += running.eq(1)
        return m


class RLCDecoder(_RLCBase):
    """RLC words in, values out; see the module docstring.

    After ``start`` the decoder emits exactly ``count`` values (fewer on an error) and reads
    words only as far as it needs them: never a word after the one that completes ``count``
    (for ``count = 0``, exactly one word, which must be the bare last-word flag).

    ``error`` (sticky until the next ``start``) is set, and the decoder stops at once --
    no more values, no more words, ``busy`` falls when its output register drains -- when

    * a flagged word is used up before ``count`` values were produced (truncated stream);
    * the word that completes ``count`` has no flag, or has nonzero bits in its unused
      slots or padding, or ends inside a run (a pair overshoots ``count``);
    * a fully used word has nonzero padding between its pairs and the flag;
    * for ``count = 0``, the word is not exactly the flag.

    As in the golden model, unused all-zero slots read as (0, 0) pairs, so a ``count`` too
    large by less than the free slots of the final word cannot be detected.

    ``i.ready`` depends combinationally on ``o.ready`` (never on ``i.valid``): the next word
    is taken in the cycle the last value of the current one leaves, which is what keeps the
    output at one value per cycle across word boundaries.
    """

    def __init__(self, *, data_width: int, run_bits: int, word_bits: int):
        super().__init__({
            "count": In(32),
            "start": In(1),
            "busy":  Out(1),
            "error": Out(1),
            "i":     In(stream.Signature(unsigned(word_bits))),
            "o":     Out(stream.Signature(signed(data_width))),
        }, data_width=data_width, run_bits=run_bits, word_bits=word_bits)

    def elaborate(self, platform):
        m = Module()
        per_word, pair_bits, rb = self._per_word, self.pair_bits, self._rb
        pairs_end = per_word * pair_bits

        running = Signal()
        empty = Signal()                        # count = 0: check the one flag-only word
        remaining = Signal(32)
        word = Signal(self._wb)
        have_word = Signal()
        slot = Signal(range(per_word))
        zeros = Signal(rb)                      # zeros of the current pair already emitted

        m.d.comb += self.busy.eq(running | self.o.valid)

        fields = [word[k * pair_bits:(k + 1) * pair_bits] for k in range(per_word)]
        # The current slot's pair, whether ``remaining`` is 1 and whether the word's padding
        # is nonzero are registers (set when a word is loaded or the slot advances), so
        # ``i.ready`` (which reaches the DMA's read stream) needs no slot multiplexer,
        # 32-bit compare or padding reduction.
        pair = Signal(pair_bits)
        run, level = pair[:rb], pair[rb:]
        flag = word[-1]
        pad_nz = Signal()
        padding_of = (lambda w: w[pairs_end:-1] if pairs_end < self._wb - 1 else Const(0, 1))
        padding = padding_of(word)
        rem_one = Signal()
        later_slots = Cat(*(Mux(slot < k, fields[k], 0) for k in range(1, per_word))) \
            if per_word > 1 else Const(0, 1)

        out_free = ~self.o.valid | self.o.ready
        step = running & have_word & ~empty & out_free
        # ``zeros != run`` as a flip-flop, set wherever zeros or the pair change
        in_run = Signal()
        last = rem_one
        word_done = step & ~in_run & ~last & (slot == per_word - 1)
        fetch = running & (~have_word | (word_done & ~flag & ~pad_nz))
        m.d.comb += self.i.ready.eq(fetch)

        def stop(error):
            return [running.eq(0), have_word.eq(0), self.error.eq(self.error | error)]

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.If(step):
            m.d.sync += [
                self.o.payload.eq(Mux(in_run, 0, level)),
                self.o.valid.eq(1),
                remaining.eq(remaining - 1),
                rem_one.eq(remaining == 2),
            ]
            with m.If(in_run):
                m.d.sync += [zeros.eq(zeros + 1), in_run.eq(zeros + 1 != run)]
                with m.If(last):
                    m.d.sync += stop(1)           # the run overshoots count
            with m.Else():
                m.d.sync += [zeros.eq(0), in_run.eq(run != 0)]
                with m.If(last):
                    m.d.sync += stop(~flag | (later_slots != 0) | (padding != 0))
                with m.Elif(slot == per_word - 1):
                    with m.If(flag | (padding != 0)):
                        m.d.sync += stop(1)       # truncated stream, or a corrupt word
                    with m.Else():
                        m.d.sync += [have_word.eq(0), slot.eq(0)]
                with m.Else():
                    nxt = Array(fields + [fields[-1]])[slot + 1]
                    m.d.sync += [slot.eq(slot + 1), pair.eq(nxt), in_run.eq(nxt[:rb] != 0)]

        with m.If(running & have_word & empty):
            m.d.sync += stop(word != (1 << (self._wb - 1)))

        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [word.eq(self.i.payload), have_word.eq(1), slot.eq(0), zeros.eq(0),
                         pair.eq(self.i.payload[:pair_bits]),
                         in_run.eq(self.i.payload[:rb] != 0),
                         pad_nz.eq(padding_of(self.i.payload) != 0)]

        with m.If(self.start & ~self.busy):
            m.d.sync += [
                running.eq(1), empty.eq(self.count == 0), remaining.eq(self.count),
                rem_one.eq(self.count == 1),
                have_word.eq(0), slot.eq(0), zeros.eq(0), self.error.eq(0),
                in_run.eq(run != 0),
            ]
        return m
