"""Test vectors for one PE pass: streams in, expected psums and counters out.

Both the amaranth.sim unit tests and the cocotb bench draw their cases from here, so the two
simulators and the Python simulator check the same thing. Expected values come from
:func:`tb.golden.pe_row` (outputs) and from counting the data (counters), never from the RTL.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from hw.pe import MAX_STRIDE, PERowConfig

from . import golden

__all__ = ["PECase", "make_case", "random_config", "extreme_case", "case_to_dict",
           "case_from_dict"]


@dataclass
class PECase:
    cfg: PERowConfig
    filters: np.ndarray          # [p, q, S]
    ifmaps: np.ndarray           # [rows, q, W]
    psum_in: np.ndarray | None   # [rows, p, F]
    data_width: int
    psum_width: int

    # -- streams, in the PE's documented orders ------------------------------------------------

    @property
    def filter_stream(self) -> list[int]:
        # for f: for s: for c
        return [int(v) for v in self.filters.transpose(0, 2, 1).reshape(-1)]

    @property
    def ifmap_stream(self) -> list[int]:
        # for row: for col: for c
        return [int(v) for v in self.ifmaps.transpose(0, 2, 1).reshape(-1)]

    @property
    def psum_in_stream(self) -> list[int]:
        if self.psum_in is None:
            return []
        # for row: for x: for f
        return [int(v) for v in self.psum_in.transpose(0, 2, 1).reshape(-1)]

    @property
    def expected(self) -> np.ndarray:
        """[rows, p, F] psums, wrapped to the psum register width."""
        out = np.stack([
            golden.pe_row(self.filters, self.ifmaps[r], stride=self.cfg.stride,
                          psum_in=None if self.psum_in is None else self.psum_in[r])
            for r in range(self.cfg.rows)])
        return golden.wrap_signed(out, self.psum_width)

    @property
    def expected_stream(self) -> list[int]:
        return [int(v) for v in self.expected.transpose(0, 2, 1).reshape(-1)]

    def expected_counters(self) -> dict[str, int]:
        """Access counts the PE must report, derived from the data and the loop nest."""
        c = self.cfg
        p, q, S, F = c.filters, c.channels, c.taps, c.out_width
        # window[r, x, k] for k = s*q + c: the ifmap value each issue slot reads.
        cols = (np.arange(F)[:, None] * c.stride + np.arange(S)[None, :])    # [F, S]
        win = self.ifmaps[:, :, cols]                                        # [rows, q, F, S]
        win = win.transpose(0, 2, 3, 1).reshape(c.rows, F, S * q)           # [rows, F, k]
        nz = win != 0
        slots = c.rows * F * S * q
        macs = int(nz.sum()) * p
        if S * q == 1:
            psum_reads = psum_writes = 0
        else:
            middle_nz = nz[:, :, 1:-1].sum() * p
            psum_writes = c.rows * F * p + middle_nz       # first tap always writes
            psum_reads = middle_nz + c.rows * F * p        # last tap always reads
        return {
            "macs": macs,
            "gated_macs": slots * p - macs,
            "filter_reads": macs,
            "filter_writes": p * q * S,
            "ifmap_reads": slots,
            "ifmap_writes": c.rows * c.width * q,
            "psum_reads": int(psum_reads),
            "psum_writes": int(psum_writes),
        }

    @property
    def mac_slots(self) -> int:
        c = self.cfg
        return c.rows * c.out_width * c.taps * c.channels * c.filters

    def describe(self) -> str:
        c = self.cfg
        return (f"p={c.filters} q={c.channels} S={c.taps} stride={c.stride} W={c.width} "
                f"rows={c.rows} psum_in={int(c.psum_in)} ring_cols={c.ring_cols or 'max'}")


def random_config(rng: np.random.Generator, *, ifmap_depth: int, filter_depth: int,
                  psum_depth: int, max_width: int = 24, max_rows: int = 3) -> PERowConfig:
    """A random configuration the PE can execute (every field inside its legal range)."""
    while True:
        q = int(rng.integers(1, ifmap_depth + 1))
        S = int(rng.integers(1, ifmap_depth // q + 1))
        p_max = min(psum_depth, filter_depth // (q * S))
        if p_max < 1:
            continue
        p = int(rng.integers(1, p_max + 1))
        stride = int(rng.choice([1, 1, 2, 3, 4, min(MAX_STRIDE, S + 2)]))
        W = int(rng.integers(S, max(S, max_width) + 1))
        ring_max = ifmap_depth // q
        ring = int(rng.choice([0, int(rng.integers(S, ring_max + 1))]))
        return PERowConfig(taps=S, channels=q, filters=p, stride=stride, width=W,
                           rows=int(rng.integers(1, max_rows + 1)),
                           psum_in=bool(rng.integers(0, 2)), ring_cols=ring)


def make_case(rng: np.random.Generator, cfg: PERowConfig, *, data_width: int, psum_width: int,
              zero_fraction: float = 0.3) -> PECase:
    p, q, S, F = cfg.filters, cfg.channels, cfg.taps, cfg.out_width
    filters = golden.random_weights(rng, (p, q, S), width=data_width, zero_fraction=0.1)
    ifmaps = golden.random_activations(rng, (cfg.rows, q, cfg.width), width=data_width,
                                       zero_fraction=zero_fraction)
    psum_in = None
    if cfg.psum_in:
        lim = 1 << (psum_width - 2)
        psum_in = rng.integers(-lim, lim, size=(cfg.rows, p, F), dtype=np.int64)
    return PECase(cfg=cfg, filters=filters, ifmaps=ifmaps, psum_in=psum_in,
                  data_width=data_width, psum_width=psum_width)


def extreme_case(cfg: PERowConfig, *, data_width: int, psum_width: int) -> PECase:
    """Most negative values everywhere: the largest products and the psum wrap-around."""
    lo = -(1 << (data_width - 1))
    p, q, S, F = cfg.filters, cfg.channels, cfg.taps, cfg.out_width
    psum_in = None
    if cfg.psum_in:
        psum_in = np.full((cfg.rows, p, F), (1 << (psum_width - 1)) - 1, dtype=np.int64)
    return PECase(cfg=cfg, filters=np.full((p, q, S), lo, dtype=np.int64),
                  ifmaps=np.full((cfg.rows, q, cfg.width), lo, dtype=np.int64),
                  psum_in=psum_in, data_width=data_width, psum_width=psum_width)


def case_to_dict(case: PECase) -> dict:
    """Plain JSON-able form (to hand a case to a simulator process)."""
    return {
        "cfg": dataclasses.asdict(case.cfg),
        "filters": case.filters.tolist(),
        "ifmaps": case.ifmaps.tolist(),
        "psum_in": None if case.psum_in is None else case.psum_in.tolist(),
        "data_width": case.data_width,
        "psum_width": case.psum_width,
    }


def case_from_dict(d: dict) -> PECase:
    return PECase(cfg=PERowConfig(**d["cfg"]),
                  filters=np.array(d["filters"], dtype=np.int64),
                  ifmaps=np.array(d["ifmaps"], dtype=np.int64),
                  psum_in=None if d["psum_in"] is None else np.array(d["psum_in"], np.int64),
                  data_width=d["data_width"], psum_width=d["psum_width"])

