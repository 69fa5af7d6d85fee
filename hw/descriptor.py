"""The pass descriptor: the contract between the mapper (gen/), the controller (hw/top.py) and
the benches (tb/).

A layer runs as a sequence of *processing passes*; the host sends one descriptor per pass on
the accelerator's ``desc`` stream. The controller checks it (a field it cannot execute sets an
error code and the descriptor is dropped, never a hang), then runs four phases in order:

1. **DMA in** -- one read burst of ``filt_words`` DRAM words from ``filt_dram`` into the global
   buffer at ``filt_glb``; then, for each channel ``k < nch_valid``, one burst of ``in_burst``
   words from ``in_dram + k*in_ch_stride`` into the global buffer at
   ``k*ch_words + row_lo*row_words`` (no request when ``in_burst`` is 0: every row of the
   tile is padding). Each burst completes before the next request.
2. **Filter load** -- the filter block is read from the global buffer one word per cycle; word
   ``g*pqs + idx`` (``pqs = filters*chans*taps``) carries in lane ``l`` the filter word ``idx``
   of PE row ``g*LANES + l`` (PE filter order: ``for f: for tap: for c``), multicast to every
   active PE of that row. ``LANES = dram_width // data_width``.
3. **Compute** -- PE row ``r < vgroups*filt_rows`` is channel group ``s = r // filt_rows`` and
   filter row ``i = r % filt_rows``; PE column ``j < ncols`` computes ofmap row ``j`` of the pass.
   PE ``(r, j)`` convolves the ifmap row ``i + j*stride`` (local row index) of channels
   ``s*chans .. s*chans+chans-1`` of the pass. The ifmap network sends, one word per cycle::

       for w' in range(in_width + 2*pad):          # padded column
         for c in range(chans):
           for s in range(vgroups):
             for h in range(nrows):                # local ifmap row
               k = s*chans + c;  w = w' - pad
               value = 0 if w outside [0, in_width) or h outside [row_lo, row_hi)
                            or k >= nch_valid
                       else lane w % LANES of GLB[k*ch_words + h*row_words + w // LANES]

   each word multicast to the active PEs with row ID ``s`` and column ID ``h`` (Eyeriss GIN:
   delivered in one cycle to all, only when all are ready; a word without targets takes its
   cycle too). Partial sums flow up each column: the bottom PE adds the column's psum buffer
   (when ``accumulate``), the top active PE writes the column's psum buffer at addresses
   ``x*filters + f`` in order.
4. **Write-back** (when ``last``) -- for ``f < p_valid``, for ``j < ncols``: one write burst
   of ``out_row_words`` words to ``out_dram + f*out_ch_stride + j*out_row_words`` holding
   ``requantize(psum[j][x*filters + f])`` for ``x < out_width`` in lane ``x % LANES`` of word
   ``x // LANES`` (unused lanes zero); requantize = saturate(round_half_up(acc >> shift)),
   ReLU when ``relu``.

Dataflows (``dataflow``: 0 = RS, 1 = WS, 2 = OS; one the hardware was not generated with, see
``AcceleratorParams.dataflows``, is refused with ``DescError.DATAFLOW``). Everything above is
RS; WS and OS keep phases 1, 2 and 4 and the ifmap network's word order, and change this:

* **WS** (weight-stationary) -- each PE keeps its ``filters*chans*taps`` weights for the whole
  pass (loaded once, phase 2) and the ifmap words stream past them through its window, as in
  RS, but a product does not stay in the PE: the PEs issue their MAC slots in lockstep (a slot
  issues when every active PE has its window), every slot's products leave the PEs at once, are
  summed down each PE column by an adder (the array's spatial accumulation over the filter
  rows and channel groups) and the column's sum is added into the column's psum buffer at
  ``x*filters + f`` (read-modify-write; the first slot of an output writes when not
  ``accumulate``). No psum scratchpad traffic; ``chans*taps`` psum-buffer updates per output
  instead of one. The psum scratchpad does not bound ``filters`` (the filter scratchpad does).
* **OS** (output-stationary) -- a PE keeps the psums of its outputs until they are complete
  over all the channels and filter rows it covers: PE row ``r < vgroups`` is channel group
  ``s = r`` and PE ``(r, j)`` takes the ``filt_rows`` ifmap rows ``j*stride .. j*stride +
  filt_rows - 1`` (the ifmap network matches a row range), so it convolves ``chans*filt_rows``
  "channels" (``c*filt_rows + i``) of ``taps`` taps; the column sums only the channel groups.
  The PEs issue in lockstep, as in WS. Weights are not kept across outputs: after each output column ``x`` a PE drops its filters and
  the whole filter block is multicast again from the global buffer (``out_width`` times per
  pass, through a second global-buffer read port, while the ifmap network keeps streaming).
  Filter word ``g*pqs + idx`` then carries, in lane ``l``, word ``idx = (f*taps + tap)*chans*
  filt_rows + c*filt_rows + i`` of PE row ``g*LANES + l``, ``pqs = filters*chans*filt_rows*taps``.

Compressed transport (gen/compress.py has the DRAM layout: per channel plane, rows packed as
separate RLC streams from the plane's start, and a row index of 16-bit row ends):

* ``in_rlc`` -- phase 1 reads each channel ``k < nch_valid`` as one index burst of
  ``in_idx_len`` words at ``in_idx + k*in_idx_stride`` (the start offset is lane
  ``in_lane_a`` of its first word, or 0 when ``in_a_zero``; the end offset lane
  ``in_lane_b`` of its last word), then one data burst of ``end - start`` words at
  ``in_dram + k*in_ch_stride + start`` through the RLC decoder: ``row_hi - row_lo`` rows of
  ``in_width`` values each, packed into the global buffer exactly as the plain words would
  be. An index or stream that does not give exactly those rows sets error ``RLC``; the burst
  is drained and the pass completes (garbage in, no hang).
* ``out_rlc`` -- phase 4 writes, for ``f < p_valid``, each row ``j < ncols`` through the RLC
  encoder, word by word (one-word writes) at ``out_dram + f*out_ch_stride + off[f]``, where
  the running offset ``off[f]`` starts at 0 when ``out_first`` (the plane's first e-chunk)
  and else continues from the previous pass of that plane; then the rows' ends (16-bit, ``f``'s
  offset after each row) as one burst of ``ceil(ncols / (dram_width/16))`` words at
  ``out_idx + f*out_idx_stride``.

DRAM and global-buffer addresses count ``dram_width``-bit words. Activations live in DRAM as
``[N][C][H][ceil(W/LANES)]`` words, so a layer's output is the next layer's input as it stands.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from amaranth.hdl import unsigned
from amaranth.lib import data, enum

from .params import AcceleratorParams
from .pe import MAX_ROW_WIDTH, MAX_STRIDE

__all__ = ["PassDescriptor", "DescError", "descriptor_layout", "lanes", "ADDR_BITS",
           "COUNT_BITS", "IDX_LANE_BITS", "DATAFLOW_CODES"]

#: The descriptor's ``dataflow`` field values.
DATAFLOW_CODES = {"rs": 0, "ws": 1, "os": 2}

#: DRAM word addresses.
ADDR_BITS = 32
#: Burst lengths, strides and other counts.
COUNT_BITS = 24
#: Lane of a 16-bit row-index entry within a DRAM word (up to 32 entries in 512 bits).
IDX_LANE_BITS = 5


def lanes(params: AcceleratorParams) -> int:
    """Activations (or weights) per DRAM / global-buffer word."""
    return params.lanes


class DescError(enum.Enum, shape=4):
    """Why the controller refused a descriptor (status ``error_code``)."""
    NONE = 0
    TAPS = 1          # taps or chans x taps beyond the ifmap scratchpad, or taps = 0
    FILTERS = 2       # filters beyond the psum scratchpad, or p x q x S beyond the filter spad
    STRIDE = 3        # stride = 0
    ROWS = 4          # vgroups x filt_rows = 0 or beyond the array rows
    COLS = 5          # ncols = 0 or beyond the array columns
    WIDTH = 6         # padded width beyond the PE's limit, or out_width inconsistent with it
    GEOMETRY = 7      # nrows, row window, channel count or row/channel words inconsistent
    GLB = 8           # ifmap tile or filter block outside the global buffer, or overlapping
    PSUM_BUF = 9      # out_width x filters beyond a column's psum buffer
    WRITEBACK = 10    # p_valid, out_row_words or shift out of range
    RLC = 11          # compressed transport: bad index fields, or (at run time) an RLC
                      # stream that does not decode to the tile's rows (pass completes)
    DATAFLOW = 12     # a dataflow the hardware was not generated with


def descriptor_layout(params: AcceleratorParams) -> data.StructLayout:
    glb = max(1, params.glb_words.bit_length())
    return data.StructLayout({
        "filt_rows":     unsigned(8),
        "taps":          unsigned(8),
        "chans":         unsigned(8),
        "filters":       unsigned(8),
        "stride":        unsigned(4),
        "vgroups":       unsigned(8),
        "ncols":         unsigned(8),
        "in_width":      unsigned(MAX_ROW_WIDTH.bit_length()),
        "pad":           unsigned(8),
        "out_width":     unsigned(MAX_ROW_WIDTH.bit_length()),
        "nrows":         unsigned(12),
        "row_lo":        unsigned(12),
        "row_hi":        unsigned(12),
        "nch_valid":     unsigned(12),
        "row_words":     unsigned(12),
        "ch_words":      unsigned(glb),
        "filt_glb":      unsigned(glb),
        "filt_dram":     unsigned(ADDR_BITS),
        "filt_words":    unsigned(glb),
        "in_dram":       unsigned(ADDR_BITS),
        "in_ch_stride":  unsigned(COUNT_BITS),
        "in_burst":      unsigned(glb),
        "accumulate":    unsigned(1),
        "last":          unsigned(1),
        "p_valid":       unsigned(8),
        "out_dram":      unsigned(ADDR_BITS),
        "out_ch_stride": unsigned(COUNT_BITS),
        "out_row_words": unsigned(12),
        "shift":         unsigned(6),
        "relu":          unsigned(1),
        "sync":          unsigned(1),
        "in_rlc":        unsigned(1),
        "in_idx":        unsigned(ADDR_BITS),
        "in_idx_len":    unsigned(8),
        "in_idx_stride": unsigned(COUNT_BITS),
        "in_lane_a":     unsigned(IDX_LANE_BITS),
        "in_lane_b":     unsigned(IDX_LANE_BITS),
        "in_a_zero":     unsigned(1),
        "out_rlc":       unsigned(1),
        "out_idx":       unsigned(ADDR_BITS),
        "out_idx_stride": unsigned(COUNT_BITS),
        "out_first":     unsigned(1),
        "dataflow":      unsigned(2),
    })


@dataclass(frozen=True, kw_only=True)
class PassDescriptor:
    """One processing pass; field meanings in the module docstring."""
    filt_rows: int
    taps: int
    chans: int
    filters: int
    stride: int
    vgroups: int
    ncols: int
    in_width: int
    pad: int
    out_width: int
    nrows: int
    row_lo: int
    row_hi: int
    nch_valid: int
    row_words: int
    ch_words: int
    filt_glb: int
    filt_dram: int
    filt_words: int
    in_dram: int
    in_ch_stride: int
    in_burst: int
    accumulate: bool
    last: bool
    p_valid: int
    out_dram: int
    out_ch_stride: int
    out_row_words: int
    shift: int
    relu: bool
    sync: bool = False
    # RLC transport (gen/compress.py has the layout): the ifmap tile arrives run-length coded
    in_rlc: bool = False
    in_idx: int = 0
    in_idx_len: int = 0
    in_idx_stride: int = 0
    in_lane_a: int = 0
    in_lane_b: int = 0
    in_a_zero: bool = False
    # ... and the output leaves run-length coded
    out_rlc: bool = False
    out_idx: int = 0
    out_idx_stride: int = 0
    out_first: bool = False
    # the pass's dataflow (DATAFLOW_CODES)
    dataflow: int = 0

    # -- derived -----------------------------------------------------------------------------

    @property
    def is_os(self) -> bool:
        return self.dataflow == DATAFLOW_CODES["os"]

    @property
    def is_ws(self) -> bool:
        return self.dataflow == DATAFLOW_CODES["ws"]

    @property
    def active_rows(self) -> int:
        return self.vgroups if self.is_os else self.vgroups * self.filt_rows

    @property
    def pe_chans(self) -> int:
        """Channels of a PE's window: ``chans``, or ``chans*filt_rows`` in OS."""
        return self.chans * self.filt_rows if self.is_os else self.chans

    @property
    def padded_width(self) -> int:
        return self.in_width + 2 * self.pad

    @property
    def pqs(self) -> int:
        return self.filters * self.pe_chans * self.taps

    def filter_groups(self, params: AcceleratorParams) -> int:
        return -(-self.active_rows // lanes(params))

    # -- checking and packing -----------------------------------------------------------------

    def error(self, params: AcceleratorParams) -> tuple[DescError, str]:
        """The controller's verdict, with a message naming the field; ``NONE`` if executable.

        The hardware makes exactly these checks (hw/top.py), so a descriptor the mapper
        accepts is one the controller executes.
        """
        p = params
        L = lanes(p)
        d = self
        E = DescError
        flows = [DATAFLOW_CODES[f] for f in p.dataflows]
        if d.dataflow not in flows:
            allowed = ", ".join(f"{DATAFLOW_CODES[f]} ({f})" for f in p.dataflows)
            return E.DATAFLOW, (f"dataflow = {d.dataflow} is out of range: allowed {allowed} "
                                f"(the dataflows the hardware was generated with)")
        qs = d.pe_chans * d.taps
        if not (1 <= d.taps and d.chans >= 1 and qs <= p.ifmap_spad_depth):
            return E.TAPS, (f"chans x taps = {d.pe_chans} x {d.taps} is out of range: allowed "
                            f"1..{p.ifmap_spad_depth} (ifmap scratchpad), each at least 1")
        p_max = min(255, p.filter_spad_depth) if d.is_ws else p.psum_spad_depth
        if not (1 <= d.filters <= p_max and d.pqs <= p.filter_spad_depth):
            return E.FILTERS, (f"filters = {d.filters} (x chans x taps = {d.pqs}) is out of "
                               f"range: allowed 1..{p_max} filters and "
                               f"p x q x S <= {p.filter_spad_depth} (filter scratchpad)")
        if not 1 <= d.stride <= MAX_STRIDE:
            return E.STRIDE, f"stride = {d.stride} is out of range: allowed 1..{MAX_STRIDE}"
        if not (1 <= d.filt_rows and 1 <= d.vgroups and d.active_rows <= p.rows):
            return E.ROWS, (f"active rows = {d.active_rows} (vgroups = {d.vgroups}, filt_rows = "
                            f"{d.filt_rows}) is out of range: allowed 1..{p.rows} (array rows)")
        if not 1 <= d.ncols <= p.cols:
            return E.COLS, f"ncols = {d.ncols} is out of range: allowed 1..{p.cols}"
        if not (1 <= d.in_width and d.padded_width <= MAX_ROW_WIDTH and d.out_width >= 1
                and (d.out_width - 1) * d.stride + d.taps <= d.padded_width):
            return E.WIDTH, (f"out_width = {d.out_width} with in_width = {d.in_width}, pad = "
                             f"{d.pad}, taps = {d.taps}, stride = {d.stride} is invalid: "
                             f"needs (out_width-1) x stride + taps <= in_width + 2 x pad "
                             f"<= {MAX_ROW_WIDTH}")
        if not (d.nrows == (d.ncols - 1) * d.stride + d.filt_rows
                and d.row_lo <= d.row_hi <= d.nrows
                and 1 <= d.nch_valid <= d.vgroups * d.chans
                and d.row_words == -(-d.in_width // L)
                and d.ch_words == d.nrows * d.row_words
                and d.in_burst == (d.row_hi - d.row_lo) * d.row_words):
            return E.GEOMETRY, ("nrows, row_lo/row_hi, nch_valid, row_words, ch_words or "
                                "in_burst inconsistent with the pass geometry")
        tile = d.vgroups * d.chans * d.ch_words
        fw = d.filter_groups(p) * d.pqs
        if not (d.filt_words == fw and tile <= d.filt_glb
                and d.filt_glb + d.filt_words <= p.glb_pass_words):
            return E.GLB, (f"ifmap tile ({tile} words) and filter block ({fw} words at "
                           f"{d.filt_glb}) must fit half the global buffer, "
                           f"{p.glb_pass_words} words, "
                           f"without overlapping")
        if not d.out_width * d.filters <= p.psum_buf_depth:
            return E.PSUM_BUF, (f"out_width x filters = {d.out_width} x {d.filters} is out of "
                                f"range: allowed 1..{p.psum_buf_depth} (psum buffer per column)")
        if not (1 <= d.p_valid <= d.filters and d.out_row_words == -(-d.out_width // L)
                and d.shift < p.psum_width):
            return E.WRITEBACK, (f"p_valid = {d.p_valid}, out_row_words = {d.out_row_words}, "
                                 f"shift = {d.shift}: allowed 1..filters, ceil(out_width / "
                                 f"{L}), 0..{p.psum_width - 1}")
        entries = max(1, p.dram_width // 16)
        if (self.in_rlc or self.out_rlc) and not p.rlc_transport:
            return E.RLC, (f"rlc_word_bits = {p.rlc_word_bits} must equal dram_width = "
                           f"{p.dram_width} (>= 16) for compressed transport")
        if self.in_rlc and self.in_burst and not (
                1 <= d.in_idx_len <= 255 and d.in_lane_a < entries and d.in_lane_b < entries):
            return E.RLC, (f"in_idx_len = {d.in_idx_len}, in_lane_a = {d.in_lane_a}, "
                           f"in_lane_b = {d.in_lane_b}: allowed 1..255 index words and lanes "
                           f"0..{entries - 1}")
        return E.NONE, ""

    def check(self, params: AcceleratorParams) -> "PassDescriptor":
        code, message = self.error(params)
        if code != DescError.NONE:
            raise ValueError(message)
        return self

    def pack(self, params: AcceleratorParams) -> int:
        """Bit pattern of the ``desc`` stream payload (field overflow is an error)."""
        layout = descriptor_layout(params)
        values = {}
        for f in dataclasses.fields(self):
            v = int(getattr(self, f.name))
            width = layout[f.name].shape.width
            if not 0 <= v < (1 << width):
                raise ValueError(f"descriptor field {f.name} = {v} does not fit its "
                                 f"{width}-bit field")
            values[f.name] = v
        return layout.const(values).as_bits()
