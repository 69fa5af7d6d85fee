"""Stream drivers for amaranth.sim async testbenches, with random stalls.

``stream_put`` and ``stream_get`` move a list of words through a ``lib.stream`` interface,
inserting idle cycles (producer side) or withholding ``ready`` (consumer side) at random, so
every block is tested stalled as well as free-running.
"""

from __future__ import annotations

import random

__all__ = ["stream_put", "stream_get"]


async def _idle(ctx, rng: random.Random | None, prob: float):
    if rng is not None and prob > 0:
        while rng.random() < prob:
            await ctx.tick()


async def stream_put(ctx, stream, words, *, rng: random.Random | None = None,
                     stall_prob: float = 0.0):
    """Send every word of ``words``; returns after the last transfer."""
    for word in words:
        await _idle(ctx, rng, stall_prob)
        ctx.set(stream.payload, word)
        ctx.set(stream.valid, 1)
        await ctx.tick().until(stream.ready)
        ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, count: int, *, rng: random.Random | None = None,
                     stall_prob: float = 0.0) -> list[int]:
    """Receive ``count`` words; returns them as integers."""
    words = []
    for _ in range(count):
        await _idle(ctx, rng, stall_prob)
        ctx.set(stream.ready, 1)
        (payload,) = await ctx.tick().sample(stream.payload).until(stream.valid)
        ctx.set(stream.ready, 0)
        words.append(int(payload.as_value().value) if hasattr(payload, "as_value")
                     else int(payload))
    return words
