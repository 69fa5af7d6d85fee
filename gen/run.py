"""``run_layer``: map a layer, build its Program, simulate it on the RTL, check, compare with the
model. Part of the command-line layer (with gen/cli.py): the one place that uses gen/ and tb/
together. A pure function of plain values, returning the ``--json`` object."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from hw.params import AcceleratorParams, dram_word_interval
from hw.top import TOP_COUNTERS, built_counters

from .emit import cached_verilog
from .mapper import map_layer
from .perf import PerfConfig, estimate
from .program import build_program, pack_activations
from .workload import ConvLayer

__all__ = ["run_layer", "run_network", "calibrate_shift", "layer_data", "CACHE", "TIMING"]

#: Counters that measure time: equal to the model's with nominal DRAM, not under stalls.
TIMING = ("cycles", "dma_in_cycles", "fload_cycles", "compute_cycles", "writeback_cycles",
          "dram_rd_stall", "dram_wr_stall", "overlap_cycles", "dma_stall_cycles")

#: Where generated Verilog and simulator builds are cached (per design hash).
CACHE = Path("build") / "cache"

# Share of zeros in generated activations, as after a ReLU on real data.
ZERO_FRACTION = 0.4


class _Progress:
    """Polls the file the bench writes its progress to and reports it every few seconds."""

    def __init__(self, folder: Path, say, sim: str, t0: float, every: float = 5.0):
        fd, name = tempfile.mkstemp(prefix="progress-", dir=folder)
        os.close(fd)
        self.path = Path(name)
        self._say, self._sim, self._t0, self._every = say, sim, t0, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        last = ""
        while not self._stop.wait(self._every):
            text = self.path.read_text().strip() if self.path.exists() else ""
            if text and text != last:
                last = text
                done, total, cycles = text.split()
                self._say(f"[{self._sim}] pass {done}/{total}, {int(cycles):,} cycles, "
                          f"{time.monotonic() - self._t0:.0f} s")

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.path.unlink(missing_ok=True)


def _first_mismatch(program, output_words, golden) -> dict | None:
    """Coordinates and values of the first output that differs from the golden model."""
    try:
        got = program.output([0] * program.out_base + list(output_words))
    except ValueError as e:     # a compressed region that does not even decode
        return {"undecodable": str(e)}
    bad = np.argwhere(got != golden)
    if not len(bad):
        return None
    n, m, e, f = (int(v) for v in bad[0])
    return {"n": n, "m": m, "e": e, "f": f, "got": int(got[n, m, e, f]),
            "expected": int(golden[n, m, e, f]), "count": int(len(bad))}


def compression_report(ofmap: np.ndarray, layout, params: AcceleratorParams) -> dict:
    """How an ofmap compresses: raw and RLC bytes (data, and with the row index), the ratio
    raw / RLC, and the RLC data bits over the entropy bound of its (run, level) pairs."""
    from .compress import entropy_bits, row_words
    raw_words = int(np.prod(ofmap.shape[:3])) * -(-ofmap.shape[3] // params.lanes)
    wb = params.dram_width // 8
    out = {"raw_bytes": raw_words * wb}
    if layout is None:
        return out
    data = int(row_words(ofmap, params).sum())
    index = layout.N * layout.C * -(-layout.H // layout.ncw) * layout.wpg
    entropy = entropy_bits(ofmap, params)
    out.update(rlc_data_bytes=data * wb, rlc_index_bytes=index * wb,
               rlc_bytes=(data + index) * wb,
               compression_ratio=round(raw_words / (data + index), 4),
               entropy_bits=round(entropy, 1),
               entropy_ratio=round(data * params.rlc_word_bits / entropy, 4) if entropy else None)
    return out


def _compare(rtl: dict, model: dict) -> dict:
    """The access counters (everything but the timing ones) the hardware has where the RTL
    and model differ."""
    return {k: {"rtl": rtl.get(k), "model": model.get(k)} for k in TOP_COUNTERS
            if k in rtl and k not in TIMING and rtl.get(k) != model.get(k)}


def _built(res: dict, params: AcceleratorParams) -> dict:
    """The RTL's counters that the hardware has (``params.counters``); the others read 0."""
    got = res.get("counters", {})
    return {k: got[k] for k in built_counters(params) if k in got}


def _dram_bytes(rtl: dict, name: str, params: AcceleratorParams):
    """DRAM bytes from the RTL's word counter, or None when the hardware has none."""
    return rtl[name] * params.dram_width // 8 if name in rtl else None


def layer_data(layer: ConvLayer, params: AcceleratorParams, seed: int):
    """Random ifmap and weights for ``layer`` (full-range signed values, realistic zeros)."""
    from tb.golden import random_activations, random_weights
    rng = np.random.default_rng(seed)
    x = random_activations(rng, (layer.N, layer.C, layer.H, layer.W),
                           width=params.data_width, zero_fraction=ZERO_FRACTION)
    w = random_weights(rng, (layer.M, layer.Cg, layer.R, layer.S), width=params.data_width,
                       zero_fraction=0.05)
    return x, w


def run_layer(params: AcceleratorParams, layer: ConvLayer, *, dataflow: str = "rs",
              sim: str = "verilator", seed: int = 0, stall_prob: float = 0.0,
              dram_latency: int = 16, cache: Path = CACHE, waves: bool = False,
              dram_bytes_per_cycle: float | None = None,
              progress=None) -> dict:
    """Simulate ``layer`` on the generated RTL; every output word is checked."""
    from tb.golden import conv2d_layer
    from tb.top_regression import run_program_bench

    t0 = time.monotonic()
    say = progress or (lambda message: None)
    mapping = map_layer(layer, params, dataflow)
    x, w = layer_data(layer, params, seed)
    program = build_program(mapping, x, w)
    shift = layer.shift_for(params.data_width)
    golden = conv2d_layer(x, w, stride=layer.stride, pad=layer.pad, groups=layer.groups,
                          shift=shift, out_width=params.data_width, relu=layer.relu)
    expected = pack_activations(golden, params)
    interval = dram_word_interval(params.dram_width, dram_bytes_per_cycle)
    perf = estimate(mapping, ifmap=x, perf=PerfConfig(dram_latency=dram_latency,
                                                      dram_word_interval=interval))
    model = perf.counters()
    say(f"{layer.name}: {mapping.describe()}; {len(program.descriptors)} passes, model "
        f"{model['cycles']} cycles")

    verilog = cached_verilog(params, "rowstat_top", cache)
    say(f"[{sim}] building (cached per design) and simulating {verilog.parent.name} ...")
    with _Progress(verilog.parent, say, sim, time.monotonic()) as watch:
        res = run_program_bench(
            params, verilog, descriptors=[d.pack(params) for d in program.descriptors],
            dram=program.dram, out_base=program.out_base, out_words=program.out_words,
            expected=expected, sim=sim, work=verilog.parent / "sim",
            dram_latency=dram_latency, stall_prob=stall_prob, seed=seed,
            dram_word_interval=interval,
            cycle_limit=max(100_000, 20 * model["cycles"]), waves=waves,
            progress_path=watch.path if progress else None)

    rtl = _built(res, params)
    mismatch = None
    if res.get("output") is not None and not res.get("match", False):
        mismatch = _first_mismatch(program, res["output"], golden)
    cycles = rtl.get("cycles", 0)
    diffs = _compare(rtl, model)
    return {
        "match": bool(res.get("passed")),
        "sim": sim,
        "preset": params.name,
        "layer": layer.name if layer.name not in ("", "custom") else layer.spec(),
        "spec": layer.spec(),
        "dataflow": mapping.dataflow,
        "mapping": mapping.describe(),
        "passes": len(program.descriptors),
        "cycles": cycles,
        "macs": layer.macs,
        "pe_utilization": layer.macs / (cycles * params.num_pes) if cycles else 0.0,
        "gated_macs": rtl.get("gated_macs"),
        "glb_reads": rtl.get("glb_reads"),
        "glb_writes": rtl.get("glb_writes"),
        "dram_read_bytes": _dram_bytes(rtl, "dram_read_words", params),
        "dram_write_bytes": _dram_bytes(rtl, "dram_write_words", params),
        "model_cycles": model["cycles"],
        "model_pe_utilization": perf.pe_utilization(params),
        "counters_match_model": not diffs,
        "counter_diffs": diffs,
        "rtl_counters": rtl,
        "model_counters": model,
        "stall_prob": stall_prob,
        "dram_latency": dram_latency,
        "dram_bytes_per_cycle": dram_bytes_per_cycle, "dram_word_interval": interval,
        "seed": seed,
        "error_code": res.get("error_code"),
        "first_mismatch": mismatch,
        "build_seconds": round(res.get("build_seconds", 0.0), 2),
        "sim_seconds": round(res.get("sim_seconds", 0.0), 2),
        "wall_seconds": round(time.monotonic() - t0, 2),
        "log": res.get("log"),
        "waves": next((str(f) for f in sorted((verilog.parent / "sim" / f"{sim}-waves").glob(
            "*.[fv][sc][td]"))), None) if waves else None,
    }


def calibrate_shift(acc: np.ndarray, data_width: int) -> int:
    """The per-layer shift of dynamic fixed point, from the layer's accumulators: the
    smallest that brings 99.9 % of them into the output range (a calibration pass)."""
    mag = float(np.percentile(np.abs(acc), 99.9)) if acc.size else 0.0
    limit = (1 << (data_width - 1)) - 1
    shift = 0
    while mag / (1 << shift) > limit:
        shift += 1
    return shift


def network_data(params: AcceleratorParams, layers, seed: int = 0):
    """Random data for consecutive layers and their golden outputs: (layers with calibrated
    shifts, weights, each layer's input, each layer's output)."""
    import dataclasses

    from tb.golden import conv2d, requantize
    x, _ = layer_data(layers[0], params, seed)
    calibrated, weights, inputs, goldens = [], [], [], []
    for k, layer in enumerate(layers):
        _, w = layer_data(layer, params, seed + 1 + k)
        acc = conv2d(x, w, stride=layer.stride, pad=layer.pad, groups=layer.groups)
        shift = layer.shift if layer.shift is not None else \
            calibrate_shift(acc, params.data_width)
        layer = dataclasses.replace(layer, shift=shift)
        out = requantize(acc, shift=shift, out_width=params.data_width, relu=layer.relu)
        calibrated.append(layer)
        weights.append(w)
        inputs.append(x)
        goldens.append(out)
        x = out
    return calibrated, weights, inputs, goldens


def run_network(params: AcceleratorParams, layers, *, dataflow: str = "rs",
                sim: str = "verilator", seed: int = 0,
                stall_prob: float = 0.0, dram_latency: int = 16, cache: Path = CACHE,
                waves: bool = False, progress=None, rlc: bool = True,
                dram_bytes_per_cycle: float | None = None) -> dict:
    """Consecutive layers in one program: each reads the previous layer's output from DRAM;
    every layer's output region is compared with the golden model's. With ``rlc`` every
    output is written run-length coded and every input but the first read that way."""
    from tb.top_regression import run_program_bench

    from .program import build_network, check_chain, encode_tensor
    from .perf import timeline

    check_chain(layers)     # before any golden convolution of a network that cannot run
    if rlc and not params.rlc_transport:
        raise ValueError(f"this design cannot move RLC-coded feature maps (rlc_word_bits = "
                         f"{params.rlc_word_bits}, dram_width = {params.dram_width}: needs "
                         f"equal widths of at least 16); use --no-rlc")
    t0 = time.monotonic()
    say = progress or (lambda message: None)
    calibrated, weights, inputs, goldens = network_data(params, layers, seed)
    x0 = inputs[0]
    mappings = [map_layer(layer, params, dataflow) for layer in calibrated]
    net = build_network(mappings, x0, weights, rlc=rlc)
    interval = dram_word_interval(params.dram_width, dram_bytes_per_cycle)
    perf = PerfConfig(dram_latency=dram_latency, dram_word_interval=interval)
    per_layer = [estimate(m, ifmap=xi, perf=perf, in_rlc=prog.in_rlc, out_rlc=prog.out_rlc,
                          ofmap=g)
                 for m, xi, prog, g in zip(mappings, inputs, net.programs, goldens)]
    model = {k: sum(p.counters()[k] for p in per_layer) for k in per_layer[0].counters()}
    model.update(timeline(net.descriptors, perf, params))
    say(f"{len(layers)} layers, {len(net.descriptors)} passes, model {model['cycles']:,} cycles")

    checks = []
    for prog, g in zip(net.programs, goldens):
        expected = encode_tensor(g, prog.out_rlc, params) if prog.out_rlc is not None \
            else pack_activations(g, params)
        checks.append({"base": prog.out_base, "words": len(expected), "expected": expected})
    verilog = cached_verilog(params, "rowstat_top", cache)
    say(f"[{sim}] building (cached per design) and simulating {verilog.parent.name} ...")
    with _Progress(verilog.parent, say, sim, time.monotonic()) as watch:
        res = run_program_bench(
            params, verilog, descriptors=[d.pack(params) for d in net.descriptors],
            dram=net.dram, out_base=checks[-1]["base"], out_words=checks[-1]["words"],
            expected=checks[-1]["expected"], sim=sim, work=verilog.parent / "sim",
            dram_latency=dram_latency, stall_prob=stall_prob, seed=seed,
            dram_word_interval=interval,
            cycle_limit=max(100_000, 20 * model["cycles"]), waves=waves,
            progress_path=watch.path if progress else None, checks=checks)
    rtl = _built(res, params)
    regions = res.get("regions") or []
    layer_rows = []
    for k, (layer, prog, g, p) in enumerate(zip(calibrated, net.programs, goldens, per_layer)):
        row = {"layer": layer.name, "spec": layer.spec(), "shift": layer.shift,
               "dataflow": mappings[k].dataflow,
               "match": bool(regions[k]["match"]) if k < len(regions) else False,
               "passes": len(prog.descriptors), "macs": layer.macs,
               "model_cycles_alone": p.cycles,
               "output_zero_fraction": float((g == 0).mean())}
        if k < len(regions) and not regions[k]["match"]:
            row["first_mismatch"] = _first_mismatch(prog, regions[k]["output"], g)
        row.update(dram_read_bytes=p.dram_read_bytes, dram_write_bytes=p.dram_write_bytes)
        row.update(compression_report(g, prog.out_rlc, params))
        layer_rows.append(row)
    diffs = _compare(rtl, model)
    cycles = rtl.get("cycles", 0)
    macs = sum(layer.macs for layer in calibrated)
    return {
        "rlc": rlc, "overlap_cycles": rtl.get("overlap_cycles"),
        "dma_stall_cycles": rtl.get("dma_stall_cycles"),
        "match": bool(res.get("passed")) and all(r["match"] for r in layer_rows),
        "sim": sim, "preset": params.name, "layers": layer_rows,
        "passes": len(net.descriptors), "cycles": cycles, "macs": macs,
        "pe_utilization": macs / (cycles * params.num_pes) if cycles else 0.0,
        "model_cycles": model["cycles"],
        "counters_match_model": not diffs, "counter_diffs": diffs,
        "rtl_counters": rtl, "model_counters": model,
        "dram_read_bytes": _dram_bytes(rtl, "dram_read_words", params),
        "dram_write_bytes": _dram_bytes(rtl, "dram_write_words", params),
        "stall_prob": stall_prob, "dram_latency": dram_latency,
        "dram_bytes_per_cycle": dram_bytes_per_cycle, "dram_word_interval": interval, "seed": seed,
        "build_seconds": round(res.get("build_seconds", 0.0), 2),
        "sim_seconds": round(res.get("sim_seconds", 0.0), 2),
        "wall_seconds": round(time.monotonic() - t0, 2), "log": res.get("log"),
    }
