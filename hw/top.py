"""The accelerator: controller, DMA, global buffer, psum buffers, PE array, write-back.

One pass descriptor (hw/descriptor.py) at a time: check -> DMA in -> filter load -> compute ->
write-back (on the last pass of an output tile). The phases are sequential (overlapping DMA
with compute is the double-buffered global buffer's job), so every phase's length follows from
the descriptor and the DRAM's timing, and the performance model can predict it.

Ports:

* ``desc`` -- descriptor stream in; accepted only while idle.
* ``busy``, ``error``, ``error_code``, ``passes_done`` -- status. A descriptor the controller
  cannot execute is consumed and dropped, ``error`` goes high (sticky until reset) and
  ``error_code`` says why (:class:`hw.descriptor.DescError`).
* ``rd_req`` / ``rd_data`` / ``wr_req`` / ``wr_data`` -- the DMA master (word addresses,
  ``{addr, len}`` requests, one burst in flight at a time).
* ``cnt_sel`` / ``cnt_value`` -- counter read port (``TOP_COUNTERS`` order, combinational).
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .array import PEArray
from .descriptor import ADDR_BITS, COUNT_BITS, DescError, descriptor_layout
from .params import AcceleratorParams
from .pe import PE_COUNTERS

__all__ = ["Accelerator", "TOP_COUNTERS", "dma_request_layout"]

TOP_COUNTERS = (
    "cycles", "dma_in_cycles", "fload_cycles", "compute_cycles", "writeback_cycles",
    "dram_rd_stall", "dram_wr_stall",
    "macs", "gated_macs", "filter_spad_reads", "filter_spad_writes",
    "ifmap_spad_reads", "ifmap_spad_writes", "psum_spad_reads", "psum_spad_writes",
    "glb_reads", "glb_writes", "psum_buf_reads", "psum_buf_writes",
    "dram_read_words", "dram_write_words", "gin_words", "passes",
)

# PE event name -> top counter name
_PE_TO_TOP = {
    "macs": "macs", "gated_macs": "gated_macs",
    "filter_reads": "filter_spad_reads", "filter_writes": "filter_spad_writes",
    "ifmap_reads": "ifmap_spad_reads", "ifmap_writes": "ifmap_spad_writes",
    "psum_reads": "psum_spad_reads", "psum_writes": "psum_spad_writes",
}


def dma_request_layout() -> data.StructLayout:
    return data.StructLayout({"addr": unsigned(ADDR_BITS), "len": unsigned(COUNT_BITS)})


class _State(enum.Enum, shape=4):
    IDLE = 0
    CHECK = 1
    DMA_FILT = 2
    DMA_IN = 3
    FLOAD = 4
    COMPUTE = 5
    WRITEBACK = 6
    DONE = 7
    SETUP = 8


class Accelerator(wiring.Component):
    """The whole rowstat accelerator for one parameter set."""

    def __init__(self, params: AcceleratorParams):
        self._p = params
        self.desc_layout = descriptor_layout(params)
        super().__init__({
            "desc":        In(stream.Signature(self.desc_layout)),
            "busy":        Out(1),
            "error":       Out(1),
            "error_code":  Out(DescError),
            "passes_done": Out(32),
            "rd_req":      Out(stream.Signature(dma_request_layout())),
            "rd_data":     In(stream.Signature(unsigned(params.dram_width))),
            "wr_req":      Out(stream.Signature(dma_request_layout())),
            "wr_data":     Out(stream.Signature(unsigned(params.dram_width))),
            "cnt_sel":     In(range(len(TOP_COUNTERS))),
            "cnt_value":   Out(params.counter_width),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._p
        L, dw, pw = p.lanes, p.data_width, p.psum_width
        rows, cols = p.rows, p.cols

        d = Signal(self.desc_layout)        # the descriptor being executed
        state = Signal(_State)
        m.d.comb += self.busy.eq(state != _State.IDLE)

        m.submodules.array = array = PEArray(p)

        # ---- storage -------------------------------------------------------------------
        m.submodules.glb = glb = Memory(shape=unsigned(p.dram_width), depth=p.glb_words,
                                        init=[])
        glb_w = glb.write_port()
        glb_r = glb.read_port(domain="sync")
        pbufs, pb_w, pb_r = [], [], []
        for j in range(cols):
            mem = Memory(shape=signed(pw), depth=p.psum_buf_depth, init=[])
            m.submodules[f"psum_buf{j}"] = mem
            pbufs.append(mem)
            pb_w.append(mem.write_port())
            pb_r.append(mem.read_port(domain="sync"))

        # ---- counters --------------------------------------------------------------------
        cw = p.counter_width
        cnt = {name: Signal(cw, name=f"cnt_{name}") for name in TOP_COUNTERS}
        m.d.comb += self.cnt_value.eq(Array(cnt[n] for n in TOP_COUNTERS)[self.cnt_sel])

        def count(name, amount):
            m.d.sync += cnt[name].eq(cnt[name] + amount)

        count("cycles", state != _State.IDLE)
        for ev, top_name in _PE_TO_TOP.items():
            count(top_name, array.events[ev])

        # ---- derived descriptor values (registered in SETUP) ----------------------------
        pqs = Signal(16)            # filters x chans x taps
        s_stride = Signal(range(p.glb_words * rows + 1))   # chans x ch_words
        err = Signal(DescError)

        # ---- the descriptor check -------------------------------------------------------
        # Same rules as PassDescriptor.error(), in the same order.
        qs = d.chans * d.taps
        pqs_c = d.filters * qs
        act_rows = d.vgroups * d.filt_rows
        padded = d.in_width + 2 * d.pad
        f_groups = (act_rows + L - 1) // L if L & (L - 1) == 0 else None
        if f_groups is None:
            raise ValueError(f"lanes = {L} must be a power of two (dram_width / data_width)")
        tile = d.vgroups * d.chans * d.ch_words
        with m.If((d.taps == 0) | (d.chans == 0) | (qs > p.ifmap_spad_depth)):
            m.d.comb += err.eq(DescError.TAPS)
        with m.Elif((d.filters == 0) | (d.filters > p.psum_spad_depth) |
                    (pqs_c > p.filter_spad_depth)):
            m.d.comb += err.eq(DescError.FILTERS)
        with m.Elif(d.stride == 0):
            m.d.comb += err.eq(DescError.STRIDE)
        with m.Elif((d.filt_rows == 0) | (d.vgroups == 0) | (act_rows > rows)):
            m.d.comb += err.eq(DescError.ROWS)
        with m.Elif((d.ncols == 0) | (d.ncols > cols)):
            m.d.comb += err.eq(DescError.COLS)
        with m.Elif((d.in_width == 0) | (padded > 4095) | (d.out_width == 0) |
                    ((d.out_width - 1) * d.stride + d.taps > padded)):
            m.d.comb += err.eq(DescError.WIDTH)
        with m.Elif((d.nrows != (d.ncols - 1) * d.stride + d.filt_rows) |
                    (d.row_lo > d.row_hi) | (d.row_hi > d.nrows) |
                    (d.nch_valid == 0) | (d.nch_valid > d.vgroups * d.chans) |
                    (d.row_words != (d.in_width + L - 1) // L) |
                    (d.ch_words != d.nrows * d.row_words) |
                    (d.in_burst != (d.row_hi - d.row_lo) * d.row_words)):
            m.d.comb += err.eq(DescError.GEOMETRY)
        with m.Elif((d.filt_words != f_groups * pqs_c) | (tile > d.filt_glb) |
                    (d.filt_glb + d.filt_words > p.glb_words)):
            m.d.comb += err.eq(DescError.GLB)
        with m.Elif(d.out_width * d.filters > p.psum_buf_depth):
            m.d.comb += err.eq(DescError.PSUM_BUF)
        with m.Elif((d.p_valid == 0) | (d.p_valid > d.filters) |
                    (d.out_row_words != (d.out_width + L - 1) // L) |
                    (d.shift >= pw)):
            m.d.comb += err.eq(DescError.WRITEBACK)
        with m.Else():
            m.d.comb += err.eq(DescError.NONE)

        # ---- DMA read engine: one burst (dram addr, len) into the GLB at glb_dst -------
        rd_go = Signal()                     # pulse: start the burst go_addr/go_len/go_dst
        go_addr = Signal(ADDR_BITS)
        go_len = Signal(COUNT_BITS)
        go_dst = Signal(range(p.glb_words + 1))
        rd_addr = Signal(ADDR_BITS)
        rd_len = Signal(COUNT_BITS)
        rd_dst = Signal(range(p.glb_words + 1))
        rd_left = Signal(COUNT_BITS)
        rd_busy = Signal()
        rd_phase = Signal()                  # 0: request, 1: data
        m.d.comb += [self.rd_req.payload.addr.eq(rd_addr), self.rd_req.payload.len.eq(rd_len)]
        with m.If(rd_go):
            m.d.sync += [rd_busy.eq(1), rd_phase.eq(0), rd_addr.eq(go_addr), rd_len.eq(go_len),
                         rd_left.eq(go_len), rd_dst.eq(go_dst)]
        with m.If(rd_busy & ~rd_phase):
            m.d.comb += self.rd_req.valid.eq(1)
            with m.If(self.rd_req.ready):
                m.d.sync += rd_phase.eq(1)
            with m.Else():
                count("dram_rd_stall", 1)
        with m.If(rd_busy & rd_phase):
            m.d.comb += [self.rd_data.ready.eq(1),
                         glb_w.addr.eq(rd_dst), glb_w.data.eq(self.rd_data.payload),
                         glb_w.en.eq(self.rd_data.valid)]
            with m.If(self.rd_data.valid):
                count("glb_writes", 1)
                count("dram_read_words", 1)
                m.d.sync += [rd_dst.eq(rd_dst + 1), rd_left.eq(rd_left - 1)]
                with m.If(rd_left == 1):
                    m.d.sync += rd_busy.eq(0)
            with m.Else():
                count("dram_rd_stall", 1)

        # ---- array programming (held for the whole pass) --------------------------------
        pe_cfg = array.cfg
        m.d.comb += [
            pe_cfg.taps.eq(d.taps), pe_cfg.channels.eq(d.chans), pe_cfg.filters.eq(d.filters),
            pe_cfg.stride.eq(d.stride), pe_cfg.width.eq(padded),
            pe_cfg.out_width.eq(d.out_width), pe_cfg.rows.eq(1), pe_cfg.psum_in_en.eq(0),
            pe_cfg.window_words.eq(qs), pe_cfg.filter_words.eq(pqs_c),
            array.filt_rows.eq(d.filt_rows), array.stride.eq(d.stride),
            array.active_rows.eq(act_rows), array.ncols.eq(d.ncols),
            array.accumulate.eq(d.accumulate),
        ]
        # Ring geometry: as many window columns as the ifmap scratchpad holds. Division by
        # the (small) channel count is a lookup over its possible values.
        ring_cols = Signal(range(p.ifmap_spad_depth + 1))
        with m.Switch(d.chans):
            for q in range(1, p.ifmap_spad_depth + 1):
                with m.Case(q):
                    m.d.comb += ring_cols.eq(p.ifmap_spad_depth // q)
        ring_words = Signal(range(p.ifmap_spad_depth + 1))
        step = Signal(range(16 * p.ifmap_spad_depth + 1))
        m.d.comb += [ring_words.eq(ring_cols * d.chans), step.eq(d.stride * d.chans)]
        step_mod = Signal(range(p.ifmap_spad_depth + 1))
        # (stride*chans) mod ring_words by repeated subtraction bounded by the stride.
        acc_mod = step
        for n in range(16):     # each step in a signal: the expression stays linear in size
            nxt = Signal.like(step, name=f"step_mod{n}")
            m.d.comb += nxt.eq(Mux(acc_mod >= ring_words, acc_mod - ring_words, acc_mod))
            acc_mod = nxt
        m.d.comb += [step_mod.eq(acc_mod), pe_cfg.ring_cols.eq(ring_cols),
                     pe_cfg.ring_words.eq(ring_words), pe_cfg.step_words.eq(step_mod)]

        # ---- filter loader: GLB[filt_glb + n] -> filter network -------------------------
        fl_run = Signal()
        fl_n = Signal(range(p.glb_words + 1))
        fl_idx = Signal(16)
        fl_g = Signal.like(array.filter.payload.g)
        fl_valid = Signal()
        fl_out_g = Signal.like(fl_g)
        fl_adv = Signal()
        fl_issue = Signal()
        m.d.comb += [
            fl_adv.eq(~fl_valid | array.filter.ready),
            fl_issue.eq(fl_run & fl_adv & (fl_n != d.filt_words)),
            array.filter.valid.eq(fl_valid),
            array.filter.payload.g.eq(fl_out_g),
            array.filter.payload.data.as_value().eq(glb_r.data),
        ]

        # ---- ifmap generator: GLB -> ifmap network --------------------------------------
        g_run = Signal()
        g_w = Signal(signed(14))             # unpadded column, -pad .. in_width+pad-1
        g_wword = Signal(range(p.glb_words + 1))
        g_lane = Signal(range(L))
        g_c = Signal(8)
        g_s = Signal(8)
        g_h = Signal(12)
        g_k = Signal(12)                     # s*chans + c
        g_ac = Signal(range(p.glb_words * rows + 1))   # c*ch_words
        g_as = Signal(range(p.glb_words * rows + 1))   # s*chans*ch_words
        g_ah = Signal(range(p.glb_words + 1))          # h*row_words
        g_done = Signal()
        o_valid = Signal()
        o_zero = Signal()
        o_lane = Signal(range(L))
        o_s = Signal(8)
        o_h = Signal(12)
        g_adv = Signal()
        g_issue = Signal()
        g_zero = Signal()
        m.d.comb += [
            g_adv.eq(~o_valid | array.ifmap.ready),
            g_issue.eq(g_run & ~g_done & g_adv),
            g_zero.eq((g_w < 0) | (g_w >= d.in_width) | (g_h < d.row_lo) |
                      (g_h >= d.row_hi) | (g_k >= d.nch_valid)),
            array.ifmap.valid.eq(o_valid),
            array.ifmap.payload.s.eq(o_s),
            array.ifmap.payload.h.eq(o_h),
        ]
        lanes_view = glb_r.data
        lane_vals = Array(lanes_view[l * dw:(l + 1) * dw].as_signed() for l in range(L))
        m.d.comb += array.ifmap.payload.data.eq(Mux(o_zero, 0, lane_vals[o_lane]))

        # GLB read port: the filter loader and the generator never run together.
        with m.If(fl_run):
            m.d.comb += [glb_r.addr.eq(d.filt_glb + fl_n), glb_r.en.eq(fl_issue)]
        with m.Else():
            m.d.comb += [glb_r.addr.eq(g_wword + g_ac + g_as + g_ah),
                         glb_r.en.eq(g_issue & ~g_zero)]
        count("glb_reads", fl_issue | (~fl_run & g_issue & ~g_zero))

        with m.If(fl_issue):
            m.d.sync += [fl_n.eq(fl_n + 1), fl_out_g.eq(fl_g)]
            with m.If(fl_idx == pqs - 1):
                m.d.sync += [fl_idx.eq(0), fl_g.eq(fl_g + 1)]
            with m.Else():
                m.d.sync += fl_idx.eq(fl_idx + 1)
        with m.If(fl_adv):
            m.d.sync += fl_valid.eq(fl_issue)

        with m.If(g_adv):
            m.d.sync += o_valid.eq(g_issue)
        count("gin_words", g_issue)
        with m.If(g_issue):
            m.d.sync += [o_zero.eq(g_zero), o_lane.eq(g_lane), o_s.eq(g_s), o_h.eq(g_h)]
            # for w': for c: for s: for h
            last_h = g_h == d.nrows - 1
            last_s = g_s == d.vgroups - 1
            last_c = g_c == d.chans - 1
            last_w = g_w == d.in_width + d.pad - 1
            m.d.sync += [g_h.eq(g_h + 1), g_ah.eq(g_ah + d.row_words)]
            with m.If(last_h):
                m.d.sync += [g_h.eq(0), g_ah.eq(0), g_s.eq(g_s + 1), g_as.eq(g_as + s_stride),
                             g_k.eq(g_k + d.chans)]
                with m.If(last_s):
                    m.d.sync += [g_s.eq(0), g_as.eq(0), g_k.eq(g_c + 1),
                                 g_c.eq(g_c + 1), g_ac.eq(g_ac + d.ch_words)]
                    with m.If(last_c):
                        m.d.sync += [g_c.eq(0), g_ac.eq(0), g_k.eq(0), g_w.eq(g_w + 1)]
                        with m.If(g_w >= 0):
                            with m.If(g_lane == L - 1):
                                m.d.sync += [g_lane.eq(0), g_wword.eq(g_wword + 1)]
                            with m.Else():
                                m.d.sync += g_lane.eq(g_lane + 1)
                        with m.If(last_w):
                            m.d.sync += g_done.eq(1)

        # ---- psum buffers: readers (psum_in) and writers (psum_out) per column ----------
        pf = Signal(range(p.psum_buf_depth + 1))      # filters x out_width
        m.d.comb += pf.eq(d.filters * d.out_width)
        wb_active = Signal()
        wb_col = Signal(range(cols))
        wb_raddr = Signal(range(p.psum_buf_depth + 1))
        wb_ren = Signal()
        pin_run = Signal()
        wr_cnt = [Signal(range(p.psum_buf_depth + 1), name=f"pb_wcnt{j}") for j in range(cols)]
        for j in range(cols):
            # writer
            m.d.comb += [
                array.psum_out[j].ready.eq(1),
                pb_w[j].addr.eq(wr_cnt[j]), pb_w[j].data.eq(array.psum_out[j].payload),
                pb_w[j].en.eq(array.psum_out[j].valid),
            ]
            with m.If(array.psum_out[j].valid):
                m.d.sync += wr_cnt[j].eq(wr_cnt[j] + 1)
            # reader (psum_in), same pattern as the GLB readers
            r_n = Signal(range(p.psum_buf_depth + 1), name=f"pb_rcnt{j}")
            r_valid = Signal(name=f"pb_rvalid{j}")
            r_adv = Signal(name=f"pb_radv{j}")
            r_issue = Signal(name=f"pb_rissue{j}")
            m.d.comb += [
                r_adv.eq(~r_valid | array.psum_in[j].ready),
                r_issue.eq(pin_run & r_adv & (r_n != pf) & (j < d.ncols)),
                array.psum_in[j].valid.eq(r_valid),
                array.psum_in[j].payload.eq(pb_r[j].data),
            ]
            with m.If(wb_active):
                m.d.comb += [pb_r[j].addr.eq(wb_raddr), pb_r[j].en.eq(wb_ren & (wb_col == j))]
            with m.Else():
                m.d.comb += [pb_r[j].addr.eq(r_n), pb_r[j].en.eq(r_issue)]
            with m.If(r_issue):
                m.d.sync += r_n.eq(r_n + 1)
            with m.If(r_adv):
                m.d.sync += r_valid.eq(r_issue)
            with m.If(state == _State.SETUP):
                m.d.sync += [r_n.eq(0), r_valid.eq(0), wr_cnt[j].eq(0)]
        count("psum_buf_writes", _count_bits([array.psum_out[j].valid for j in range(cols)]))
        pin_reads = []
        for j in range(cols):
            pin_reads.append(pb_r[j].en & ~wb_active)
        count("psum_buf_reads", _count_bits(pin_reads) + wb_ren)
        writers_done = Cat(*[(wr_cnt[j] == pf) | (j >= d.ncols) for j in range(cols)]).all()

        # ---- write-back: psum buffer -> requantize -> pack -> DRAM -----------------------
        wb_f = Signal(8)
        wb_x = Signal(range(4096 + L))           # lane index within the row
        wb_last_x = Signal.like(wb_x)
        wb_addr = Signal(ADDR_BITS)
        wb_fbase = Signal(ADDR_BITS)
        wb_req_pending = Signal()
        wb_issuing = Signal()                    # the row's lanes are being issued
        s1_valid = Signal()
        s1_real = Signal()                       # lane holds a psum (x < out_width)
        s1_lane = Signal(range(L))
        s1_lastlane = Signal()
        s1_rowend = Signal()
        pack = Signal(data.ArrayLayout(signed(dw), L))
        beat_valid = Signal()
        beat = Signal(p.dram_width)
        stall_wb = Signal()
        m.d.comb += [
            stall_wb.eq(s1_valid & s1_lastlane & beat_valid & ~self.wr_data.ready),
            self.wr_data.valid.eq(beat_valid), self.wr_data.payload.eq(beat),
            self.wr_req.payload.addr.eq(wb_addr), self.wr_req.payload.len.eq(d.out_row_words),
            self.wr_req.valid.eq(wb_req_pending),
        ]
        # Cycles the write-back loses to DRAM: the request waits, the lane pipeline waits for
        # the beat register, or the row's last beat waits with nothing else in flight. A beat
        # waiting while the next lanes are still being read costs nothing and is not counted.
        count("dram_wr_stall", (wb_req_pending & ~self.wr_req.ready) | stall_wb |
              (beat_valid & ~self.wr_data.ready & ~wb_issuing & ~s1_valid))
        with m.If(beat_valid & self.wr_data.ready):
            m.d.sync += beat_valid.eq(0)
            count("dram_write_words", 1)
        with m.If(wb_req_pending & self.wr_req.ready):
            m.d.sync += [wb_req_pending.eq(0), wb_issuing.eq(1), wb_x.eq(0)]

        # requantize the value read in the previous cycle
        acc = Array(pb_r[j].data for j in range(cols))[wb_col]
        half = (Const(1, pw + 1) << d.shift) >> 1
        rounded = Signal(signed(pw + 2))
        m.d.comb += rounded.eq((acc + half) >> d.shift)
        lo, hi = -(1 << (dw - 1)), (1 << (dw - 1)) - 1
        floor = Mux(d.relu, 0, lo)
        sat = Signal(signed(dw))
        m.d.comb += sat.eq(Mux(rounded > hi, hi, Mux(rounded < floor, floor, rounded)))

        m.d.comb += wb_ren.eq(wb_issuing & ~stall_wb & (wb_x < d.out_width))
        # address of psum x*filters + f, kept incrementally
        wb_pa = Signal(range(p.psum_buf_depth + 64))
        m.d.comb += wb_raddr.eq(wb_pa)
        with m.If(wb_issuing & ~stall_wb):
            m.d.sync += [
                s1_valid.eq(1), s1_real.eq(wb_x < d.out_width),
                s1_lane.eq(wb_x[:max(1, (L - 1).bit_length())] if L > 1 else 0),
                s1_lastlane.eq((wb_x & (L - 1)) == L - 1),
                s1_rowend.eq(wb_x == wb_last_x),
                wb_x.eq(wb_x + 1), wb_pa.eq(wb_pa + d.filters),
            ]
            with m.If(wb_x == wb_last_x):
                m.d.sync += wb_issuing.eq(0)
        with m.Elif(~stall_wb):
            m.d.sync += s1_valid.eq(0)
        with m.If(s1_valid & ~stall_wb):
            value = Mux(s1_real, sat, 0)
            for l in range(L):
                with m.If(s1_lane == l):
                    m.d.sync += pack[l].eq(value)
            with m.If(s1_lastlane):
                # the beat is free here (stall_wb covers the other case)
                full = Cat(*[Mux(s1_lane == l, value, pack[l])[:dw]
                             for l in range(L)])
                m.d.sync += [beat.eq(full), beat_valid.eq(1)]
        m.d.comb += wb_last_x.eq(d.out_row_words * L - 1)

        # ---- the controller ---------------------------------------------------------------
        k_ch = Signal(12)                       # channel burst counter (DMA in)
        k_dram = Signal(ADDR_BITS)
        k_glb = Signal(range(p.glb_words * rows + 1))
        count("dma_in_cycles", (state == _State.DMA_FILT) | (state == _State.DMA_IN))
        count("fload_cycles", state == _State.FLOAD)
        count("compute_cycles", state == _State.COMPUTE)
        count("writeback_cycles", state == _State.WRITEBACK)

        with m.Switch(state):
            with m.Case(_State.IDLE):
                m.d.comb += self.desc.ready.eq(1)
                with m.If(self.desc.valid):
                    m.d.sync += [d.eq(self.desc.payload), state.eq(_State.CHECK)]
            with m.Case(_State.CHECK):
                with m.If(err != DescError.NONE):
                    m.d.sync += [self.error.eq(1), self.error_code.eq(err),
                                 state.eq(_State.IDLE)]
                with m.Else():
                    m.d.sync += state.eq(_State.SETUP)
            with m.Case(_State.SETUP):
                # register derived values; the array IDs settle during this cycle
                m.d.sync += [pqs.eq(pqs_c), s_stride.eq(d.chans * d.ch_words),
                             state.eq(_State.DMA_FILT)]
                m.d.comb += [rd_go.eq(1), go_addr.eq(d.filt_dram), go_len.eq(d.filt_words),
                             go_dst.eq(d.filt_glb)]
                m.d.sync += [k_ch.eq(0), k_dram.eq(d.in_dram),
                             k_glb.eq(d.row_lo * d.row_words)]
            with m.Case(_State.DMA_FILT):
                with m.If(~rd_busy):
                    m.d.sync += state.eq(_State.DMA_IN)
            with m.Case(_State.DMA_IN):
                with m.If(~rd_busy):
                    with m.If((k_ch == d.nch_valid) | (d.in_burst == 0)):
                        m.d.sync += [state.eq(_State.FLOAD), fl_run.eq(1), fl_n.eq(0),
                                     fl_idx.eq(0), fl_g.eq(0)]
                        m.d.comb += array.start.eq(1)
                    with m.Else():
                        m.d.comb += [rd_go.eq(1), go_addr.eq(k_dram), go_len.eq(d.in_burst),
                                     go_dst.eq(k_glb)]
                        m.d.sync += [k_ch.eq(k_ch + 1),
                                     k_dram.eq(k_dram + d.in_ch_stride),
                                     k_glb.eq(k_glb + d.ch_words)]
            with m.Case(_State.FLOAD):
                with m.If((fl_n == d.filt_words) & ~fl_valid):
                    m.d.sync += [fl_run.eq(0), state.eq(_State.COMPUTE), g_run.eq(1),
                                 pin_run.eq(d.accumulate),
                                 g_w.eq(-Cat(d.pad, Const(0, 1)).as_signed()),
                                 g_wword.eq(0), g_lane.eq(0), g_c.eq(0), g_s.eq(0),
                                 g_h.eq(0), g_k.eq(0), g_ac.eq(0), g_as.eq(0),
                                 g_ah.eq(0), g_done.eq(0)]
            with m.Case(_State.COMPUTE):
                with m.If(g_done & ~o_valid & ~array.busy & writers_done):
                    m.d.sync += [g_run.eq(0), pin_run.eq(0)]
                    with m.If(d.last):
                        m.d.sync += [state.eq(_State.WRITEBACK), wb_active.eq(1), wb_f.eq(0),
                                     wb_col.eq(0), wb_addr.eq(d.out_dram),
                                     wb_fbase.eq(d.out_dram), wb_req_pending.eq(1),
                                     wb_pa.eq(0)]
                    with m.Else():
                        m.d.sync += state.eq(_State.DONE)
            with m.Case(_State.WRITEBACK):
                row_idle = ~wb_req_pending & ~wb_issuing & ~s1_valid & ~beat_valid
                with m.If(row_idle):
                    last_col = wb_col == d.ncols - 1
                    with m.If(last_col & (wb_f == d.p_valid - 1)):
                        m.d.sync += [wb_active.eq(0), state.eq(_State.DONE)]
                    with m.Elif(last_col):
                        m.d.sync += [wb_col.eq(0), wb_f.eq(wb_f + 1),
                                     wb_fbase.eq(wb_fbase + d.out_ch_stride),
                                     wb_addr.eq(wb_fbase + d.out_ch_stride),
                                     wb_pa.eq(wb_f + 1), wb_req_pending.eq(1)]
                    with m.Else():
                        m.d.sync += [wb_col.eq(wb_col + 1),
                                     wb_addr.eq(wb_addr + d.out_row_words),
                                     wb_pa.eq(wb_f), wb_req_pending.eq(1)]
            with m.Case(_State.DONE):
                m.d.sync += [state.eq(_State.IDLE), self.passes_done.eq(self.passes_done + 1)]
                count("passes", 1)
        return m


def _count_bits(bits):
    total = Const(0, 1)
    for b in bits:
        total = total + b
    return total

