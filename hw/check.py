"""The descriptor check: a small sequential engine with one shared multiplier.

The loader runs it on every descriptor it accepts (state ``CHECK``). It makes exactly the
checks of :meth:`hw.descriptor.PassDescriptor.error`, with the same priority, and derives the
values the executor needs (``pqs``, ``qs``, ...), so that neither the loader nor the executor
carries a multiplier of its own. The products are computed one per cycle on one
``a_width x b_width`` multiplier (a single DSP block on ECP5 and iCE40 for the presets), with
its operands registered and its product registered, so the multiplier (the slowest element,
about 5.6 ns in an ECP5 DSP) sits alone between two registers: no operand multiplexer before
it and no comparator after it.

Cycle ``k`` of the check (``run`` high, ``k = 0 .. CHECK_CYCLES - 1``); product ``k`` is the
``k``-th step of :data:`ORDER` (two products apart when one needs the other):

* ``k = 0`` -- every rule term that needs no product (zero fields, ranges, lane counts);
  the operands of product 0 are selected;
* ``k = 1 .. 16`` -- the operands of product ``k`` (``k <= 13``) are selected, the multiplier
  forms product ``k - 1`` and the right-hand side of its comparison is registered, product
  ``k - 2`` (registered) is kept and compared on the one shared subtractor (``y - rhs``,
  registered), and the rule of product ``k - 3`` is flagged from that difference;
* ``k = CHECK_CYCLES - 1`` -- ``done``: ``err`` is the first failed rule in
  :class:`~hw.descriptor.DescError` order, and ``derived`` holds the pass's values.

Operand widths: a product whose operands were truncated is only ever looked at when every
earlier rule passed, and those rules bound the operands (e.g. ``pqs`` feeds the filter-block
size only once ``pqs <= filter_spad_depth`` is known), so the verdict is exact.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .descriptor import DATAFLOW_CODES, DescError, descriptor_layout
from .params import AcceleratorParams
from .pe import MAX_ROW_WIDTH, MAX_STRIDE

__all__ = ["DescriptorCheck", "CHECK_CYCLES", "derived_layout"]

#: The rules in the order :meth:`PassDescriptor.error` tests them (the first that fails is the
#: verdict).
PRIORITY = (DescError.DATAFLOW, DescError.TAPS, DescError.FILTERS, DescError.STRIDE,
            DescError.ROWS, DescError.COLS, DescError.WIDTH, DescError.GEOMETRY, DescError.GLB,
            DescError.PSUM_BUF, DescError.WRITEBACK, DescError.RLC)

#: Cycles the loader spends in ``CHECK`` per descriptor (14 products, each compared three
#: cycles after its operands, the verdict).
CHECK_CYCLES = 18

#: The order the steps (numbered as in ``DescriptorCheck.elaborate``) go through the
#: multiplier: a step using another's product (qs after pe_q, pqs after qs) comes two
#: cycles after it, when that product is registered.
ORDER = (0, 3, 1, 4, 2, 5, 6, 7, 8, 9, 10, 11, 12, 13)


def _bits(n: int) -> int:
    return max(1, int(n).bit_length())


def derived_layout(params: AcceleratorParams) -> data.StructLayout:
    """Values derived from a descriptor the check accepted (bounded by its rules)."""
    p = params
    return data.StructLayout({
        "ws":       1,                              # dataflow is WS (hardware has it)
        "os":       1,                              # ... OS
        "pe_q":     _bits(p.ifmap_spad_depth),      # channels of a PE's window
        "qs":       _bits(p.ifmap_spad_depth),      # pe_q x taps
        "pqs":      _bits(p.filter_spad_depth),     # filters x pe_q x taps
        "act_rows": _bits(p.rows),                  # active PE rows
        "padded":   _bits(MAX_ROW_WIDTH),           # in_width + 2 pad
        "pf":       _bits(p.psum_buf_depth),        # filters x out_width
        "s_stride": _bits(p.glb_words),             # chans x ch_words
        "glb_lo":   _bits(p.glb_words),             # row_lo x row_words
        # the PEs' ifmap ring (see below): window columns, words, step mod ring words
        "ring_cols":  _bits(p.ifmap_spad_depth),
        "ring_words": _bits(p.ifmap_spad_depth),
        "step_words": _bits(p.ifmap_spad_depth),
    })


class DescriptorCheck(wiring.Component):
    """Checks ``desc`` while ``run`` is high; ``done`` after :data:`CHECK_CYCLES` cycles.

    ``desc`` must hold still while ``run`` is high; dropping ``run`` restarts the engine.
    ``err`` and ``derived`` are valid in the ``done`` cycle and hold until the next run.
    """

    def __init__(self, params: AcceleratorParams):
        self._p = params
        super().__init__({
            "desc":    In(descriptor_layout(params)),
            "run":     In(1),
            "done":    Out(1),
            "err":     Out(DescError),
            "derived": Out(derived_layout(params)),
        })

    @staticmethod
    def operand_widths(params: AcceleratorParams) -> tuple[int, int]:
        """Widths of the shared multiplier's operands."""
        glb = _bits(params.glb_words)
        return 16, max(12, glb)

    def elaborate(self, platform):
        m = Module()
        p = self._p
        L = p.lanes
        lane_bits = (L - 1).bit_length()
        dl = self.desc
        out = self.derived
        half = p.glb_pass_words
        n_idx = max(1, p.dram_width // 16)
        has_rlc = p.rlc_transport

        ck = Signal(range(CHECK_CYCLES))
        with m.If(self.run & (ck != CHECK_CYCLES - 1)):
            m.d.sync += ck.eq(ck + 1)
        with m.Elif(~self.run):
            m.d.sync += ck.eq(0)
        m.d.comb += self.done.eq(self.run & (ck == CHECK_CYCLES - 1))

        ws, os_ = Signal(), Signal()
        if "ws" in p.dataflows:
            m.d.comb += ws.eq(dl.dataflow == DATAFLOW_CODES["ws"])
        if "os" in p.dataflows:
            m.d.comb += os_.eq(dl.dataflow == DATAFLOW_CODES["os"])
        padded = Signal(_bits(MAX_ROW_WIDTH + 2 * 255))
        m.d.comb += padded.eq(dl.in_width + 2 * dl.pad)

        # ---- the shared multiplier and its registered product ----------------------------
        aw, bw = self.operand_widths(p)
        a, b = Signal(aw), Signal(bw)
        a_q, b_q = Signal(aw), Signal(bw)
        y = Signal(aw + bw)
        m.d.sync += [a_q.eq(a), b_q.eq(b), y.eq(a_q * b_q)]

        vc = Signal(16)                       # vgroups x chans (at most 255 x 255)
        f_groups = Signal(bw)
        m.d.comb += f_groups.eq((out.act_rows + (L - 1)) >> lane_bits)

        # One flag per rule: set from the product-free terms in cycle 0, then or-ed with
        # the terms of each product as it arrives.
        fail = {e: Signal(name=f"fail_{e.name.lower()}") for e in PRIORITY}

        def flag(e, cond):
            m.d.sync += fail[e].eq(fail[e] | cond)

        def keep(*stmts):
            m.d.sync += list(stmts)

        # One comparator for every product: ``y - rhs`` (signed), read as y > rhs, y < rhs or
        # y != rhs; each step drives ``rhs`` (a field, a constant or a small difference).
        rw = max(_bits(MAX_ROW_WIDTH), _bits(p.glb_words), _bits(p.psum_buf_depth),
                 _bits(p.filter_spad_depth), _bits(p.ifmap_spad_depth), _bits(p.rows)) + 1
        # Pipelined: ``rhs`` is registered the cycle before its product arrives, the difference
        # the cycle the product is in ``y``, and the rule's flag is set a cycle later, so no
        # multiplexer, subtractor and flag logic stand in series.
        rhs = Signal(signed(rw))
        rhs_q = Signal(signed(rw))
        diff = Signal(signed(max(len(y), rw) + 1))
        m.d.sync += [rhs_q.eq(rhs), diff.eq(y - rhs_q)]
        rel = {"gt": diff > 0, "lt": diff < 0, "ne": diff != 0}

        def cmp_rhs(value):
            m.d.comb += rhs.eq(value)

        def cmp(e, how):
            flag(e, rel[how])

        # Each step: its operands (selected in its cycle of ORDER) and what is done with its
        # product two cycles later (``y`` holds it then).
        # step: (operands, its comparison (rule, how, right-hand side) or None, what is kept of
        # its product)
        steps = [
            # 0: pe_q = chans (x filt_rows in OS)
            ((dl.chans, Mux(os_, dl.filt_rows, 1)), None,
             lambda: keep(out.pe_q.eq(y))),
            # 1: qs = pe_q x taps  (y = pe_q)
            ((y, dl.taps), (DescError.TAPS, "gt", p.ifmap_spad_depth),
             lambda: keep(out.qs.eq(y))),
            # 2: pqs = filters x qs  (qs fits 16 bits once TAPS passed)
            ((y, dl.filters), (DescError.FILTERS, "gt", p.filter_spad_depth),
             lambda: keep(out.pqs.eq(y))),
            # 3: active rows = vgroups (x filt_rows unless OS)
            ((dl.vgroups, Mux(os_, 1, dl.filt_rows)), (DescError.ROWS, "gt", p.rows),
             lambda: keep(out.act_rows.eq(y))),
            # 4: (out_width - 1) x stride: the last window must end inside the padded row
            ((dl.out_width - 1, dl.stride), (DescError.WIDTH, "gt", padded - dl.taps), None),
            # 5: (ncols - 1) x stride + filt_rows must be nrows
            ((dl.ncols - 1, dl.stride), (DescError.GEOMETRY, "ne", dl.nrows - dl.filt_rows),
             None),
            # 6: vgroups x chans bounds the valid channels
            ((dl.vgroups, dl.chans), (DescError.GEOMETRY, "lt", dl.nch_valid),
             lambda: keep(vc.eq(y))),
            # 7: ch_words = nrows x row_words
            ((dl.nrows, dl.row_words), (DescError.GEOMETRY, "ne", dl.ch_words), None),
            # 8: in_burst = (row_hi - row_lo) x row_words
            ((dl.row_hi - dl.row_lo, dl.row_words), (DescError.GEOMETRY, "ne", dl.in_burst),
             None),
            # 9: filt_words = filter groups x pqs  (pqs, act bounded once FILTERS, ROWS passed)
            ((out.pqs, f_groups), (DescError.GLB, "ne", dl.filt_words), None),
            # 10: the ifmap tile, vgroups x chans x ch_words, ends before the filter block
            ((vc, dl.ch_words), (DescError.GLB, "gt", dl.filt_glb), None),
            # 11: pf = filters x out_width fits a column's psum buffer
            ((dl.out_width, dl.filters), (DescError.PSUM_BUF, "gt", p.psum_buf_depth),
             lambda: keep(out.pf.eq(y))),
            # 12: s_stride = chans x ch_words (the executor's channel-group step)
            ((dl.chans, dl.ch_words), None, lambda: keep(out.s_stride.eq(y))),
            # 13: glb_lo = row_lo x row_words (the first ifmap row's global-buffer offset)
            ((dl.row_lo, dl.row_words), None, lambda: keep(out.glb_lo.eq(y))),
        ]
        assert sorted(ORDER) == list(range(len(steps)))
        assert len(steps) + 4 == CHECK_CYCLES

        # cycle k: operands of step ORDER[k]; rhs of step ORDER[k - 1] (its product is in
        # ``y`` next cycle); step ORDER[k - 2]'s product kept; step ORDER[k - 3]'s rule flagged
        with m.Switch(ck):
            for k in range(CHECK_CYCLES - 1):
                with m.Case(k):
                    if k < len(steps):
                        (av, bv), _, _ = steps[ORDER[k]]
                        m.d.comb += [a.eq(av), b.eq(bv)]
                    if k == 0:
                        self._base_terms(m, fail, ws, os_, padded, half, n_idx, has_rlc)
                    if 1 <= k <= len(steps) and steps[ORDER[k - 1]][1] is not None:
                        cmp_rhs(steps[ORDER[k - 1]][1][2])
                    if 2 <= k <= len(steps) + 1 and steps[ORDER[k - 2]][2] is not None:
                        steps[ORDER[k - 2]][2]()
                    if 3 <= k <= len(steps) + 2 and steps[ORDER[k - 3]][1] is not None:
                        e, how, _ = steps[ORDER[k - 3]][1]
                        cmp(e, how)
        m.d.sync += [out.ws.eq(ws), out.os.eq(os_), out.padded.eq(padded)]

        # Ring geometry, from pe_q (kept in cycle 2) and the stride: as many window columns
        # as the ifmap scratchpad holds, and the ring step (stride*q) mod (ring_cols*q) =
        # q * (stride mod ring_cols). A table over the legal q and strides (no multiplier or
        # division), registered: valid long before ``done``, and held with ``derived``.
        D = p.ifmap_spad_depth
        with m.Switch(out.pe_q):
            for q in range(1, D + 1):
                with m.Case(q):
                    rc = D // q
                    m.d.sync += [out.ring_cols.eq(rc), out.ring_words.eq(rc * q)]
                    with m.Switch(dl.stride):
                        for st in range(1, MAX_STRIDE + 1):
                            with m.Case(st):
                                m.d.sync += out.step_words.eq(q * (st % rc))

        # ---- the verdict: the first failed rule --------------------------------------------
        for e in reversed(PRIORITY):              # the last assignment (the first rule) wins
            with m.If(fail[e]):
                m.d.comb += self.err.eq(e)
        return m

    def _base_terms(self, m, fail, ws, os_, padded, half, n_idx, has_rlc):
        """Cycle 0: every term without a product; the flags start from these."""
        p = self._p
        dl = self.desc
        L = p.lanes
        lane_bits = (L - 1).bit_length()
        E = DescError
        flow_ok = Cat(*[dl.dataflow == DATAFLOW_CODES[f] for f in p.dataflows]).any()
        p_max = Mux(ws, min(255, p.filter_spad_depth), p.psum_spad_depth)
        ceil_l = lambda v: (v + (L - 1)) >> lane_bits        # noqa: E731
        terms = {
            E.DATAFLOW: ~flow_ok,
            E.TAPS: (dl.taps == 0) | (dl.chans == 0),
            E.FILTERS: (dl.filters == 0) | (dl.filters > p_max),
            E.STRIDE: dl.stride == 0,
            E.ROWS: (dl.filt_rows == 0) | (dl.vgroups == 0),
            E.COLS: (dl.ncols == 0) | (dl.ncols > p.cols),
            E.WIDTH: (dl.in_width == 0) | (padded > MAX_ROW_WIDTH) | (dl.out_width == 0),
            E.GEOMETRY: ((dl.row_lo > dl.row_hi) | (dl.row_hi > dl.nrows) |
                         (dl.nch_valid == 0) | (dl.row_words != ceil_l(dl.in_width))),
            E.GLB: dl.filt_glb + dl.filt_words > half,
            E.PSUM_BUF: 0,
            E.WRITEBACK: ((dl.p_valid == 0) | (dl.p_valid > dl.filters) |
                          (dl.out_row_words != ceil_l(dl.out_width)) |
                          (dl.shift >= p.psum_width)),
            E.RLC: (((dl.in_rlc | dl.out_rlc) & (not has_rlc)) |
                    (dl.in_rlc & (dl.in_burst != 0) &
                     ((dl.in_idx_len == 0) | (dl.in_lane_a >= n_idx) |
                      (dl.in_lane_b >= n_idx)))),
        }
        for e, cond in terms.items():
            m.d.sync += fail[e].eq(cond)
