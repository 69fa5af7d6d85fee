"""The PE array: rows x cols PEs, the filter and ifmap networks, the vertical psum chains.

Networks (Eyeriss GIN style):

* **Ifmap network** -- one word per cycle, tagged ``(s, h)``. Every PE holds a row ID (its
  channel group ``s = r // filt_rows``) and a column ID (the ifmap row it convolves,
  ``i + j*stride`` with ``i = r % filt_rows``); a word goes to every active PE whose IDs match,
  in one cycle, and only when all of them are ready. IDs are derived from the pass's
  ``filt_rows`` and ``stride`` and registered, so the match is one comparator per PE.
* **Filter network** -- one global-buffer word per cycle, ``LANES`` weights wide, tagged with a
  row group ``g``: lane ``l`` goes to every active PE of row ``g*LANES + l``. A row of PEs
  shares its filters (they convolve different ifmap rows with the same filter rows). A word's
  targets load in step (see the filter network below), so the handshake is the targets' own
  ``ready``: no AND over the array.
* **Psum chains** -- PE ``(r, j)`` passes its partial sums to ``(r+1, j)``; the bottom PE of a
  column takes the column's ``psum_in`` (the psum buffer, when accumulating across passes), the
  top *active* PE drives the column's ``psum_out``.

Dataflows (hardware present only for the modes in ``params.dataflows``): ``mode`` is sent to
every PE. OS sets ``filt_rows = 1`` (row ``r`` is channel group ``r``) and ``fold`` to the
filter height: a PE then takes the ``fold`` ifmap rows ``col_id .. col_id + fold - 1`` (a range
match instead of an equality; ``fold = 1`` is the RS match). WS raises every PE's ``go`` when
all active PEs can issue (lockstep), and adds the products of each column's active PEs into
``ws_sum[j]`` (registered, valid in ``ws_valid``): the filter rows and channel groups of a
column are summed in the array, not in any PE. OS issues in lockstep too (its PE rows reload
their filters group after group; lockstep keeps a column's outputs together).

Per-cycle access events of all PEs are summed into ``events`` (one count per PE counter), so
the top keeps one counter per kind instead of one per PE.

Timing: with ``params.registered_networks`` (more than two PEs) every PE presents its ifmap
``ready`` from a flip-flop (computed a cycle ahead, see the PE's ``registered_ready``), so the
array-wide AND of the ifmap handshake starts at registers. The lockstep ``go`` is a
flip-flop: the AND over the PEs of ``can_next`` (the next cycle's ``can_issue`` judged
without this cycle's ifmap and filter words), so gathering the PEs' flags and sending ``go``
to every PE are two cycles, not one; a step that waited for a word (or an OS filter reload)
starts a cycle later than with the combinational AND (gen.perf's WS/OS replays add that
cycle), back-to-back steps do not.
``busy`` is a flip-flop, the OR of the PEs' next ``busy``. The PEs' configuration comes from a
register of the array's (programmed a cycle before ``start``), a skid buffer between two rows
makes each row's psum ``ready`` a flip-flop (no ready path down a column), and the column's
top row is one-hot and registered. The event sums are then pipelined (strobes and row counts
registered: the counts arrive two cycles late).
"""

from __future__ import annotations

import functools
import operator

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import AcceleratorParams
from .pe import PE, PE_COUNTERS, pe_config_layout
from .skid import SkidBuffer

__all__ = ["PEArray", "ifmap_word_layout", "filter_word_layout", "REPLICA_ATTR"]

#: Attribute on a register's signal that is a deliberate copy of another (to split a fan-out):
#: synthesis would merge identical flip-flops, so the FPGA flow marks the flip-flops driving
#: signals with it ``keep``. Simulators ignore it.
REPLICA_ATTR = "rowstat_replica"


def _tree_sum(values):
    values = list(values)
    while len(values) > 1:
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


def ifmap_word_layout(params: AcceleratorParams) -> data.StructLayout:
    return data.StructLayout({
        "data": signed(params.data_width),
        "s": unsigned(max(1, (params.rows - 1).bit_length())),
        "h": unsigned(12),
    })


def filter_word_layout(params: AcceleratorParams) -> data.StructLayout:
    groups = -(-params.rows // params.lanes)
    return data.StructLayout({
        "data": data.ArrayLayout(signed(params.data_width), params.lanes),
        "g": unsigned(max(1, (groups - 1).bit_length())),
    })


class PEArray(wiring.Component):
    """``params.rows`` x ``params.cols`` PEs with their networks.

    Program ``cfg`` (shared PE configuration; its ``psum_in_en`` is ignored), ``filt_rows``,
    ``stride``, ``active_rows``, ``ncols`` and ``accumulate``, wait one cycle for the IDs to
    settle, pulse ``start``; then feed ``filter`` and ``ifmap`` and drain ``psum_out``.
    """

    def __init__(self, params: AcceleratorParams):
        self._p = params
        rows, cols = params.rows, params.cols
        pw = params.psum_width
        self.cfg_layout = pe_config_layout(params.ifmap_spad_depth, params.filter_spad_depth,
                                           params.psum_spad_depth)
        extra = {}
        if "os" in params.dataflows:
            extra["fold"] = In(8)
        if "ws" in params.dataflows:
            extra["ws_valid"] = Out(1)
            extra["ws_sum"] = Out(signed(pw)).array(cols)
        # Large arrays take the ifmap word's targets precomputed (``ifmap_hit``, bit
        # ``r*cols + j``: the parent applies :meth:`ifmap_hits` to the word's tags when it
        # reads the word, and offers the result with it).
        self.registered_ready = params.registered_networks
        if self.registered_ready:
            extra["ifmap_hit"] = In(rows * cols)
        # IDs and activity (registered: stable a cycle after the pass inputs; col_id and
        # col_end a cycle later). Made here so that :meth:`ifmap_hits` can use them.
        self._row_group = [Signal(range(rows), name=f"row_group{r}") for r in range(rows)]
        self._col_id = [[Signal(12, name=f"col_id_{r}_{j}") for j in range(cols)]
                        for r in range(rows)]
        # OS: col_id + fold, registered with col_id (no adder before the range match)
        self._col_end = [[Signal(13, name=f"col_end_{r}_{j}") for j in range(cols)]
                         for r in range(rows)]
        self._row_on = [Signal(name=f"row_on{r}") for r in range(rows)]
        self._col_on = [Signal(name=f"col_on{j}") for j in range(cols)]
        super().__init__({
            **extra,
            "cfg":         In(self.cfg_layout),
            "filt_rows":   In(range(rows + 1)),
            "stride":      In(4),
            "active_rows": In(range(rows + 1)),
            "ncols":       In(range(cols + 1)),
            "accumulate":  In(1),
            "start":       In(1),
            "busy":        Out(1),
            "filter":      In(stream.Signature(filter_word_layout(params))),
            "ifmap":       In(stream.Signature(ifmap_word_layout(params))),
            "psum_in":     In(stream.Signature(signed(pw))).array(cols),
            "psum_out":    Out(stream.Signature(signed(pw))).array(cols),
            "events":      Out(data.StructLayout({
                n: unsigned((rows * cols).bit_length()) for n in PE_COUNTERS})),
        })

    def ifmap_hits(self, s, h):
        """The PEs an ifmap word tagged ``(s, h)`` goes to: bit ``r*cols + j`` for PE
        ``(r, j)`` (from the IDs of the current pass)."""
        p = self._p
        layout = ifmap_word_layout(p)
        s = Value.cast(s)[:Shape.cast(layout.members["s"]).width]   # as the word carries them
        h = Value.cast(h)[:Shape.cast(layout.members["h"]).width]
        bits = []
        for r in range(p.rows):
            row_hit = self._row_on[r] & (s == self._row_group[r])
            for j in range(p.cols):
                if "os" in p.dataflows:
                    bits.append(row_hit & self._col_on[j] & (h >= self._col_id[r][j]) &
                                (h < self._col_end[r][j]))
                else:
                    bits.append(row_hit & self._col_on[j] & (h == self._col_id[r][j]))
        return Cat(*bits)

    def elaborate(self, platform):
        m = Module()
        p = self._p
        rows, cols, L = p.rows, p.cols, p.lanes

        # Beyond a couple of PEs the ifmap handshake and the lockstep issue are array-wide:
        # each PE then presents its ``ready`` and ``can_issue`` from flip-flops (same cycles)
        regd = self.registered_ready
        pes = [[PE.from_params(p, counters=False, registered_ready=regd) for _ in range(cols)]
               for _ in range(rows)]
        for r in range(rows):
            for j in range(cols):
                m.submodules[f"pe_{r}_{j}"] = pes[r][j]

        # ---- IDs and activity --------------------------------------------------------------
        row_group, col_id, col_end = self._row_group, self._col_id, self._col_end
        row_on, col_on = self._row_on, self._col_on
        row_tap = [Signal(range(rows), name=f"row_tap{r}") for r in range(rows)]
        # Row r is group r // filt_rows, tap r % filt_rows: a chain of counters, one signal per
        # stage (so the expression stays linear), registered at the end.
        g_c, t_c = Const(0, range(rows)), Const(0, range(rows))
        for r in range(rows):
            if r > 0:
                wrap = t_c + 1 == self.filt_rows
                g_n = Signal(range(rows), name=f"g_chain{r}")
                t_n = Signal(range(rows), name=f"t_chain{r}")
                m.d.comb += [g_n.eq(Mux(wrap, g_c + 1, g_c)), t_n.eq(Mux(wrap, 0, t_c + 1))]
                g_c, t_c = g_n, t_n
            m.d.sync += [row_group[r].eq(g_c), row_tap[r].eq(t_c),
                         row_on[r].eq(r < self.active_rows)]
        for j in range(cols):
            m.d.sync += col_on[j].eq(j < self.ncols)
            # stride x j as shifts and adds of the constant j's bits: a multiplier here would
            # take an FPGA DSP block for every j that is not a power of two
            sj = sum((self.stride << b for b in range(j.bit_length()) if j >> b & 1),
                     Const(0, 1))
            for r in range(rows):
                m.d.sync += col_id[r][j].eq(row_tap[r] + sj)
                if "os" in p.dataflows:
                    m.d.sync += col_end[r][j].eq(row_tap[r] + sj + self.fold)

        # ---- configuration and start -------------------------------------------------------
        # Large arrays take the configuration through registers of their own, one copy per
        # row (``cfg`` and ``accumulate`` are programmed a cycle before ``start``, so the
        # copies are in place when the PEs start): each copy's fan-out is one row of PEs, on
        # flip-flops the placer can put among them, not the whole array off the controller's
        # descriptor register. The copies are identical logic, so the FPGA flow marks their
        # flip-flops ``keep`` (:data:`REPLICA_ATTR`) -- synthesis would merge them otherwise.
        cfgs, accumulate = [self.cfg] * rows, self.accumulate
        if regd:
            # (reset-less: loaded in every cycle, so no reset logic before their flip-flops)
            cfgs = [Signal(self.cfg_layout, name=f"pe_cfg{r}", reset_less=True,
                           attrs={REPLICA_ATTR: 1}) for r in range(rows)]
            accumulate = Signal(name="pe_accumulate")
            m.d.sync += [c.eq(self.cfg) for c in cfgs]
            m.d.sync += accumulate.eq(self.accumulate)
        busy = []
        for r in range(rows):
            for j in range(cols):
                pe = pes[r][j]
                m.d.comb += pe.cfg.eq(cfgs[r])
                m.d.comb += pe.cfg.psum_in_en.eq(accumulate if r == 0 else 1)
                m.d.comb += pe.start.eq(self.start & row_on[r] & col_on[j])
                busy.append(pe.busy_next if regd else pe.busy)
        if regd:
            # a flip-flop: the OR of the PEs' next ``busy`` (same cycles)
            m.d.sync += self.busy.eq(Cat(*busy).any())
        else:
            m.d.comb += self.busy.eq(Cat(*busy).any())

        # ---- filter network ----------------------------------------------------------------
        # The targets of a word (the active PEs of one row group) are ready together: they
        # start together, take the same words, and in OS go back to loading together (their
        # slots issue in lockstep), so each PE takes a word on its own ``ready`` and the
        # source sees the ready of the group's first PE, (g * LANES, 0), active whenever any
        # PE of the group is (a word without targets is taken at once). No AND over the
        # array's PEs, and nothing array-wide between a PE's ready and its write: a target
        # that was not ready with the others would lose or repeat words, which every RTL
        # test's word-by-word comparison with the golden model would show.
        groups = -(-rows // L)
        g = self.filter.payload.g
        first = [pes[k * L][0] for k in range(groups)]
        first_on = [row_on[k * L] & col_on[0] for k in range(groups)]
        m.d.comb += self.filter.ready.eq(Mux(first_on[0], first[0].filter.ready, 1))
        for k in range(1, groups):
            with m.If(g == k):
                m.d.comb += self.filter.ready.eq(Mux(first_on[k], first[k].filter.ready, 1))
        for r in range(rows):
            target_row = row_on[r] & (g == r // L)
            for j in range(cols):
                pe = pes[r][j]
                hit = target_row & col_on[j]
                m.d.comb += [pe.filter.payload.eq(self.filter.payload.data[r % L]),
                             pe.filter.valid.eq(self.filter.valid & hit & pe.filter.ready)]

        # ---- ifmap network -----------------------------------------------------------------
        word = self.ifmap.payload
        hits = self.ifmap_hit if regd else self.ifmap_hits(word.s, word.h)
        i_ok = []
        for r in range(rows):
            for j in range(cols):
                pe = pes[r][j]
                hit = hits[r * cols + j]
                m.d.comb += [pe.ifmap.payload.eq(word.data),
                             pe.ifmap.valid.eq(self.ifmap.valid & hit & self.ifmap.ready)]
                i_ok.append(~hit | pe.ifmap.ready)
        m.d.comb += self.ifmap.ready.eq(Cat(*i_ok).all())

        # ---- psum chains -------------------------------------------------------------------
        # The top active row (the column's output), one-hot and registered with the IDs: the
        # output is an AND-OR of the rows, and no subtractor or decoder of ``active_rows``
        # sits in the psum handshake.
        is_top = [Signal(name=f"is_top{r}") for r in range(rows)]
        for r in range(rows):
            m.d.sync += is_top[r].eq(self.active_rows == r + 1)
        for j in range(cols):
            col = [pes[r][j] for r in range(rows)]
            wiring.connect(m, wiring.flipped(self.psum_in[j]), col[0].psum_in)
            # Between two rows of a large array, a skid buffer: a row's psum_out.ready is
            # then a flip-flop, not the row above's ready, so no ready path runs down a
            # column (one that would grow with the rows). A word passes straight through
            # while the buffer is empty: the same cycles while the row above takes what it
            # is offered.
            above_ready = []
            for r in range(1, rows):
                lo, hi = col[r - 1].psum_out, col[r].psum_in
                if not regd:
                    m.d.comb += [hi.payload.eq(lo.payload), hi.valid.eq(lo.valid)]
                    above_ready.append(hi.ready)
                    continue
                sk = m.submodules[f"psum_skid_{r}_{j}"] = SkidBuffer(lo.payload.shape())
                # (the top row's words leave on the column's output, not upwards)
                m.d.comb += [sk.i.valid.eq(lo.valid & ~is_top[r - 1]),
                             sk.i.payload.eq(lo.payload)]
                wiring.connect(m, sk.o, hi)
                above_ready.append(sk.i.ready)
            for r in range(rows):
                above = above_ready[r] if r + 1 < rows else Const(0)
                m.d.comb += col[r].psum_out.ready.eq(
                    Mux(is_top[r], self.psum_out[j].ready, above))
            m.d.comb += [
                self.psum_out[j].payload.eq(functools.reduce(operator.or_, [
                    Mux(is_top[r], col[r].psum_out.payload, 0) for r in range(rows)])),
                self.psum_out[j].valid.eq(Cat(*[is_top[r] & col[r].psum_out.valid
                                                for r in range(rows)]).any()),
            ]

        # ---- WS, OS: lockstep issue; WS: the column adders --------------------------------
        if "ws" in p.dataflows or "os" in p.dataflows:
            if regd:
                # a flip-flop (a copy per PE row): the AND over the PEs of their next
                # ``can_issue`` judged without this cycle's ifmap and filter words, so the
                # AND and the wires to every PE are in different cycles (a step that waited
                # for a word starts a cycle later)
                gos = [Signal(name=f"go_r{r}", attrs={REPLICA_ATTR: 1}) for r in range(rows)]
                all_can = Cat(*[pe.can_next for row in pes for pe in row]).all()
                m.d.sync += [g.eq(all_can) for g in gos]
            else:
                go = Signal()
                m.d.comb += go.eq(Cat(*[pe.can_issue for row in pes for pe in row]).all())
                gos = [go] * rows
            for r in range(rows):
                for j in range(cols):
                    m.d.comb += [pes[r][j].go.eq(gos[r]),
                                 pes[r][j].active.eq(row_on[r] & col_on[j])]
        if "ws" in p.dataflows:
            m.d.sync += self.ws_valid.eq(pes[0][0].product_valid)
            for j in range(cols):
                m.d.sync += self.ws_sum[j].eq(_tree_sum(
                    Mux(row_on[r], pes[r][j].product, 0) for r in range(rows)))

        # ---- event counts ------------------------------------------------------------------
        flat = [pe for row in pes for pe in row]
        for name in PE_COUNTERS:
            if not regd:
                m.d.comb += self.events[name].eq(_tree_sum(pe.events[name] for pe in flat))
                continue
            # a large array's sum is pipelined: each PE's strobe, then each PE row's count
            # are registered (the counts reach the counters two cycles late; a pass's last
            # PE event is many cycles before its write-back ends)
            row_sums = []
            for r in range(rows):
                strobes = []
                for j in range(cols):
                    ev = Signal(name=f"ev_{name}_{r}_{j}")
                    m.d.sync += ev.eq(pes[r][j].events[name])
                    strobes.append(ev)
                rs = Signal(range(cols + 1), name=f"ev_{name}_row{r}")
                m.d.sync += rs.eq(_tree_sum(strobes))
                row_sums.append(rs)
            m.d.comb += self.events[name].eq(_tree_sum(row_sums))
        return m
