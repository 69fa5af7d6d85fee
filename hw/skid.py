"""A zero-latency skid buffer: a stream whose ``ready`` upstream is a flip-flop.

A word passes straight through (same cycle) while the buffer is empty; when the downstream
side refuses a word, the buffer keeps it and tells the upstream side to wait from the next
cycle on. So a chain of handshakes (a column of PEs, each taking its psums from the one
below) no longer has one ``ready`` path through every stage, and no cycle is lost while the
downstream side takes what it is offered.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer"]


class SkidBuffer(wiring.Component):
    """``i`` -> ``o`` with ``i.ready`` from a register (``o.valid``, ``o.payload`` are
    combinational from ``i`` while the buffer is empty)."""

    def __init__(self, shape):
        self._shape = shape
        super().__init__({"i": In(stream.Signature(shape)),
                          "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        full = Signal()
        held = Signal(self._shape)
        m.d.comb += [self.i.ready.eq(~full),
                     self.o.valid.eq(self.i.valid | full),
                     self.o.payload.eq(Mux(full, held, self.i.payload))]
        with m.If(self.o.ready):
            m.d.sync += full.eq(0)
        with m.Elif(self.i.valid & ~full):
            m.d.sync += full.eq(1)
        # ``held`` follows the input while the buffer is empty (it is read only when full,
        # and it fills with the word of the cycle the buffer fills): its enable is the
        # ``full`` flip-flop, and the downstream ready stays out of its data registers
        with m.If(~full):
            m.d.sync += held.eq(self.i.payload)
        return m
