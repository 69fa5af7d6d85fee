"""valid/ready stream drivers for cocotb benches on Amaranth-generated Verilog.

Amaranth names a stream port ``<name>__payload``, ``<name>__valid``, ``<name>__ready``; the
classes below take that prefix. Each cycle they drive on the falling edge, then sample the
handshake in the read-only phase of that same time step -- the values the rising edge will see
-- so that a transfer is counted exactly when the hardware sees one. Idle and stall cycles come
from a seeded RNG with a given probability.
"""

from __future__ import annotations

import random

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

__all__ = ["StreamSource", "StreamSink"]


class _Port:
    def __init__(self, dut, prefix: str, clk, *, rng: random.Random, stall_prob: float):
        self.payload = getattr(dut, f"{prefix}__payload")
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.width = len(self.payload)
        self.clk = clk
        self.rng = rng
        self.stall_prob = stall_prob
        self._task = None

    def _stalled(self) -> bool:
        return self.stall_prob > 0 and self.rng.random() < self.stall_prob

    def stop(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None


class StreamSource(_Port):
    """Sends a list of integers (negative values as two's complement)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.valid.value = 0
        self.sent = 0

    def start(self, words):
        self._task = cocotb.start_soon(self._run(list(words)))
        return self

    async def _run(self, words):
        mask = (1 << self.width) - 1
        i = 0
        while i < len(words):
            await FallingEdge(self.clk)
            offer = not self._stalled()
            self.valid.value = int(offer)
            if offer:
                self.payload.value = words[i] & mask
            await ReadOnly()
            fire = offer and bool(self.ready.value)
            await RisingEdge(self.clk)
            if fire:
                i += 1
                self.sent = i
        await FallingEdge(self.clk)
        self.valid.value = 0

    @property
    def done(self) -> bool:
        return self._task is None or self._task.done()


class StreamSink(_Port):
    """Receives signed integers into ``self.words``."""

    def __init__(self, *args, signed: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.ready.value = 0
        self.signed = signed
        self.words: list[int] = []

    def start(self):
        self._task = cocotb.start_soon(self._run())
        return self

    async def _run(self):
        while True:
            await FallingEdge(self.clk)
            take = not self._stalled()
            self.ready.value = int(take)
            await ReadOnly()
            if take and bool(self.valid.value):
                v = self.payload.value
                self.words.append(v.to_signed() if self.signed else v.to_unsigned())
            await RisingEdge(self.clk)
