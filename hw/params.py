"""Accelerator parameters: one frozen, validated object that every block and tool reads.

Every generator input lives here so that a design point is a single hashable value: the
simulator cache, the manifest and the performance model all key on it. Leaf blocks take the
few explicit values they need from it (see :mod:`hw.pe`) rather than the whole object.

Validation happens on construction, so no half-valid parameter set can reach elaboration; a
bad field raises :class:`ValueError` naming the field, the value and the allowed range.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["AcceleratorParams", "PRESETS", "DATAFLOWS", "COUNTER_SETS", "SPAD_RAMS", "preset", "load_toml", "dump_toml",
           "dram_word_interval"]


DATAFLOWS = ("rs", "ws", "os")
#: Values of ``filter_spad_ram``.
SPAD_RAMS = ("auto", "lut", "block")
#: Values of ``counters``.
COUNTER_SETS = ("all", "cycles")


def _bits(n: int) -> int:
    """Bits of an unsigned counter or address that must represent 0 .. n-1 (at least 1)."""
    return max(1, (n - 1).bit_length())


# Allowed ranges of the integer fields, inclusive. Kept as a table so that the error message,
# the documentation (`rowstat generate --help`) and the check cannot disagree.
_RANGES = {
    "rows":               (1, 64),
    "cols":               (1, 64),
    "data_width":         (4, 16),
    "psum_width":         (8, 64),
    "ifmap_spad_depth":   (1, 256),
    "filter_spad_depth":  (1, 4096),
    "psum_spad_depth":    (1, 256),
    "glb_kib":            (1, 4096),
    "glb_banks":          (1, 64),
    "psum_buf_depth":     (16, 65536),
    "dram_width":         (8, 512),
    "rlc_run_bits":       (1, 8),
    "rlc_word_bits":      (8, 512),
    "counter_width":      (16, 64),
    "clock_mhz":          (1, 2000),
}


@dataclass(frozen=True, kw_only=True)
class AcceleratorParams:
    """A design point of the rowstat accelerator.

    Widths are in bits, depths in words of the block's own width, the global buffer in KiB.
    """

    #: Preset or user name; names the output files, not part of the hardware.
    name: str = "custom"
    #: PE array rows (filter rows of a PE set map onto rows).
    rows: int = 3
    #: PE array columns (ofmap rows of a PE set map onto columns).
    cols: int = 4
    #: Signed activation and weight width.
    data_width: int = 8
    #: Signed partial-sum width inside PEs and the global buffer.
    psum_width: int = 32
    #: Ifmap scratchpad (sliding window over q channels) words.
    ifmap_spad_depth: int = 12
    #: Filter scratchpad (p filters x q channels x S taps) words.
    filter_spad_depth: int = 224
    #: Psum scratchpad (one per interleaved filter) words.
    psum_spad_depth: int = 24
    #: Global buffer size.
    glb_kib: int = 108
    #: Global buffer banks (the double-buffering unit).
    glb_banks: int = 2
    #: Words of each column's psum buffer (carved out of the global buffer): the partial sums
    #: of one column's ofmap row for the filters of a pass live there between passes.
    psum_buf_depth: int = 128
    #: DRAM data port width.
    dram_width: int = 64
    #: RLC run-length field width; the level field is `data_width` wide.
    rlc_run_bits: int = 5
    #: RLC word width, including the last-word flag bit.
    rlc_word_bits: int = 64
    #: Width of every performance counter.
    counter_width: int = 48
    #: Which performance counters the hardware has: "all" (every counter of
    #: hw.top.TOP_COUNTERS) or "cycles" (only ``cycles`` and ``passes``; the others read 0).
    #: "cycles" is for the smallest FPGAs: 25 counters are about 700 iCE40 logic cells.
    counters: str = "all"
    #: Where each PE's filter scratchpad goes on an FPGA: "auto" (Yosys chooses: LUT RAM on
    #: ECP5 for the presets' depths, block RAM on iCE40), "lut" (LUT RAM / logic) or "block"
    #: (block RAM). The ifmap scratchpad is read combinationally, so it is always LUT RAM or
    #: logic; the global buffer and the psum buffers are always block RAM.
    filter_spad_ram: str = "auto"
    #: Dataflows the generated hardware supports.
    dataflows: tuple[str, ...] = DATAFLOWS
    #: Target clock, for reports (cycles to seconds) and synthesis constraints.
    clock_mhz: int = 200

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"name must be an identifier (letters, digits, _), not {self.name!r}")
        for fname, (lo, hi) in _RANGES.items():
            value = getattr(self, fname)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{fname} must be an integer in {lo}..{hi}, not {value!r}")
            if not lo <= value <= hi:
                raise ValueError(f"{fname} = {value} is out of range: allowed {lo}..{hi}")
        if self.filter_spad_ram not in SPAD_RAMS:
            raise ValueError(f"filter_spad_ram = {self.filter_spad_ram!r} is invalid: allowed "
                             f"{', '.join(repr(c) for c in SPAD_RAMS)}")
        if self.counters not in COUNTER_SETS:
            raise ValueError(f"counters = {self.counters!r} is invalid: allowed "
                             f"{', '.join(repr(c) for c in COUNTER_SETS)}")
        # Dataflows: a non-empty subset of DATAFLOWS, stored as a tuple in canonical order.
        flows = self.dataflows
        if isinstance(flows, str) or not all(isinstance(f, str) for f in flows):
            raise ValueError(f"dataflows must be a list of names from {list(DATAFLOWS)}, "
                             f"not {flows!r}")
        unknown = [f for f in flows if f not in DATAFLOWS]
        if unknown or not flows:
            raise ValueError(f"dataflows = {list(flows)!r} is invalid: allowed a non-empty "
                             f"subset of {list(DATAFLOWS)}")
        object.__setattr__(self, "dataflows", tuple(f for f in DATAFLOWS if f in flows))
        # Cross-field rules.
        if self.psum_width < self.product_width:
            raise ValueError(f"psum_width = {self.psum_width} is out of range: allowed "
                             f"{self.product_width}..64 (at least 2 x data_width, the width "
                             f"of one product)")
        if self.dram_width & (self.dram_width - 1) or self.dram_width % 8:
            raise ValueError(f"dram_width = {self.dram_width} is invalid: allowed a power of "
                             f"two in 8..512")
        if self.rlc_pairs_per_word < 1:
            raise ValueError(f"rlc_word_bits = {self.rlc_word_bits} is out of range: allowed "
                             f"{self.rlc_pair_bits + 1}..512 (one {self.rlc_run_bits}+"
                             f"{self.rlc_level_bits}-bit pair and the last-word bit)")
        if self.dram_width < self.data_width:
            raise ValueError(f"dram_width = {self.dram_width} is out of range: allowed "
                             f"{self.data_width}..512 (at least one data word)")
        if self.glb_words < 64:
            raise ValueError(f"psum_buf_depth = {self.psum_buf_depth} is out of range for "
                             f"glb_kib = {self.glb_kib}: the psum buffers ({self.cols} x "
                             f"{self.psum_buf_depth} x {self.psum_width} bits) must leave at "
                             f"least 64 words of the global buffer for ifmaps and filters")
        if self.glb_bank_words < 16:
            raise ValueError(f"glb_banks = {self.glb_banks} is out of range for glb_kib = "
                             f"{self.glb_kib}: allowed 1..{self.glb_kib * 1024 // 8 // 16} "
                             f"(each bank needs at least 16 words of 64 bits)")

    # -- derived widths and sizes -------------------------------------------------------------

    @property
    def num_pes(self) -> int:
        return self.rows * self.cols

    @property
    def product_width(self) -> int:
        """Width of one signed data_width x data_width product."""
        return 2 * self.data_width

    @property
    def rlc_level_bits(self) -> int:
        """RLC level field: one activation, never truncated."""
        return self.data_width

    @property
    def rlc_pair_bits(self) -> int:
        return self.rlc_run_bits + self.rlc_level_bits

    @property
    def rlc_pairs_per_word(self) -> int:
        return (self.rlc_word_bits - 1) // self.rlc_pair_bits

    @property
    def rlc_max_run(self) -> int:
        return (1 << self.rlc_run_bits) - 1

    @property
    def rlc_transport(self) -> bool:
        """Whether the hardware has the RLC codec on its DRAM path: RLC words as wide as DRAM
        words, with room for 16-bit row-index entries (``rlc_word_bits = dram_width >= 16``)."""
        return self.rlc_word_bits == self.dram_width >= 16

    @property
    def registered_networks(self) -> bool:
        """Whether the array's handshakes are built for size (more than two PEs): every PE
        presents its ifmap ready and issue flag from flip-flops, each ifmap word's targets
        are precomputed, and the filter network's word is registered (a cycle more per
        filter load). Two PEs save the logic (``pico`` fills an iCE40UP5K)."""
        return self.rows * self.cols > 2

    @property
    def glb_bytes(self) -> int:
        return self.glb_kib * 1024

    @property
    def lanes(self) -> int:
        """Activations or weights per DRAM / global-buffer word."""
        return self.dram_width // self.data_width

    @property
    def psum_buf_bytes(self) -> int:
        """All columns' psum buffers, carved out of the global buffer."""
        return self.cols * self.psum_buf_depth * -(-self.psum_width // 8)

    @property
    def glb_words(self) -> int:
        """Global-buffer words (``dram_width`` bits) left for ifmap tiles and filter blocks."""
        return (self.glb_bytes - self.psum_buf_bytes) * 8 // self.dram_width

    @property
    def glb_pass_words(self) -> int:
        """Global-buffer words one pass may use: the buffer is split in two halves, so that
        the DMA fills one with the next pass's data while the array computes from the other."""
        return self.glb_words // 2

    @property
    def glb_bank_words(self) -> int:
        """Depth of one global-buffer bank in 64-bit words."""
        return self.glb_bytes // 8 // self.glb_banks

    @property
    def ifmap_addr_width(self) -> int:
        return _bits(self.ifmap_spad_depth)

    @property
    def filter_addr_width(self) -> int:
        return _bits(self.filter_spad_depth)

    @property
    def psum_addr_width(self) -> int:
        return _bits(self.psum_spad_depth)

    @property
    def peak_macs_per_cycle(self) -> int:
        return self.num_pes

    # -- identity and serialisation -----------------------------------------------------------

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["dataflows"] = list(self.dataflows)
        return d

    @property
    def hardware_hash(self) -> str:
        """Short hash of everything that changes the generated hardware (not the name)."""
        d = self.to_dict()
        d.pop("name")
        blob = json.dumps(d, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def replace(self, **changes) -> "AcceleratorParams":
        """A validated copy with some fields changed (presets derive from each other this way)."""
        return dataclasses.replace(self, **changes)


_TINY = AcceleratorParams(
    name="tiny", rows=6, cols=4, data_width=8, psum_width=24,
    ifmap_spad_depth=12, filter_spad_depth=32, psum_spad_depth=4,
    glb_kib=8, glb_banks=2, psum_buf_depth=128, dram_width=64, rlc_run_bits=5, rlc_word_bits=64,
    counter_width=32, clock_mhz=100,
)

PRESETS: dict[str, AcceleratorParams] = {
    # The largest point found to fit the iCE40UP5K (5,280 logic cells, 8 DSPs, 30 block RAMs):
    # 2x1 PEs (filters up to 2 rows), RS only, an 8-word ifmap scratchpad, a 32-bit DRAM port,
    # no RLC codec (rlc_word_bits != dram_width), only the cycles/passes counters. Logic cells
    # run out first (98 % used; a third PE does not fit).
    "pico": _TINY.replace(name="pico", rows=2, cols=1, psum_width=20, ifmap_spad_depth=8,
                          filter_spad_depth=16, psum_spad_depth=2, glb_kib=2,
                          psum_buf_depth=32, dram_width=32, rlc_word_bits=16, counter_width=16,
                          counters="cycles", dataflows=("rs",), clock_mhz=24),
    # Small enough that a whole layer simulates in seconds; exercises every folding path.
    "tiny": _TINY,
    # A mid-size FPGA point (6x7 PEs, 16-bit); bench/fpga.py measures it on ECP5-85F.
    "small": _TINY.replace(name="small", rows=6, cols=7, data_width=16, psum_width=40,
                           filter_spad_depth=64, psum_spad_depth=8, glb_kib=32, glb_banks=4,
                           psum_buf_depth=256,
                           counter_width=48, clock_mhz=100),
    # The Eyeriss chip (JSSC 2017): 12 x 14 PEs, 16-bit, 12/224/24-word scratchpads, 108 KiB
    # global buffer, RLC with 5-bit runs, 16-bit levels, three pairs per 64-bit word. Psums are
    # kept at 48 bits instead of the chip's 16-bit slice, and requantized per layer.
    "eyeriss": AcceleratorParams(
        name="eyeriss", rows=12, cols=14, data_width=16, psum_width=48,
        ifmap_spad_depth=12, filter_spad_depth=224, psum_spad_depth=24,
        glb_kib=108, glb_banks=27, psum_buf_depth=512, dram_width=64, rlc_run_bits=5, rlc_word_bits=64,
        counter_width=48, clock_mhz=200,
    ),
}


def dram_word_interval(dram_width: int, bytes_per_cycle: float | None) -> int:
    """Cycles per DRAM word on each port for a DRAM that moves ``bytes_per_cycle`` bytes per
    core cycle (None: as fast as the port, one word per cycle). A DRAM slower than the port
    must move a whole word in a whole number of cycles (e.g. 4, 2 or 1 bytes per cycle for
    a 64-bit port)."""
    if bytes_per_cycle is None:
        return 1
    word = dram_width // 8
    if isinstance(bytes_per_cycle, bool) or not isinstance(bytes_per_cycle, (int, float)) \
            or not bytes_per_cycle > 0:
        raise ValueError(f"DRAM bandwidth = {bytes_per_cycle!r} bytes per cycle is out of "
                         f"range: allowed > 0")
    if bytes_per_cycle >= word:
        return 1
    k = word / bytes_per_cycle
    if abs(k - round(k)) > 1e-9:
        allowed = ", ".join(f"{word / n:g}" for n in range(1, 9) if word % n == 0)
        raise ValueError(f"DRAM bandwidth = {bytes_per_cycle:g} bytes per cycle is invalid "
                         f"for a {dram_width}-bit port: allowed >= {word} or a whole number "
                         f"of cycles per word ({allowed}, ...)")
    return int(round(k))


def preset(name: str) -> AcceleratorParams:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}: allowed {', '.join(PRESETS)}") from None


_FIELDS = {f.name: f for f in dataclasses.fields(AcceleratorParams)}


def from_dict(d: dict, *, source: str = "parameters") -> AcceleratorParams:
    """Parameters from a plain mapping; `preset = "NAME"` starts from a preset."""
    d = dict(d)
    base = preset(d.pop("preset")) if "preset" in d else AcceleratorParams()
    unknown = sorted(set(d) - set(_FIELDS))
    if unknown:
        raise ValueError(f"{source}: unknown field {unknown[0]!r}: allowed "
                         f"preset, {', '.join(_FIELDS)}")
    if "dataflows" in d and isinstance(d["dataflows"], list):
        d["dataflows"] = tuple(d["dataflows"])
    return base.replace(**d)


def load_toml(path: str | Path) -> AcceleratorParams:
    """Read parameters from TOML: top-level keys, or an `[accelerator]` table."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ValueError(f"cannot read config {str(path)!r}: {e.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: invalid TOML: {e}") from None
    if "accelerator" in data and isinstance(data["accelerator"], dict):
        data = data["accelerator"]
    return from_dict(data, source=str(path))


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string literal is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def dump_toml(params: AcceleratorParams) -> str:
    lines = ["[accelerator]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in params.to_dict().items()]
    return "\n".join(lines) + "\n"
