"""The ``rowstat`` command line: the one place that ties hw/, gen/ and tb/ together.

Exit status: 0 success, 1 a simulation mismatch or failure, 2 bad input (one line on stderr
naming the problem, no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from hw.params import PRESETS, AcceleratorParams, load_toml, preset

__all__ = ["main"]


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse would print the usage too)
        raise UsageError(message)


def _params(args) -> AcceleratorParams:
    if args.config and args.preset:
        raise UsageError("give --preset or --config, not both")
    if args.config:
        return load_toml(args.config)
    return preset(args.preset or "tiny")


def _add_design(p: argparse.ArgumentParser):
    g = p.add_argument_group("design point")
    g.add_argument("--preset", metavar="NAME",
                   help=f"named parameter set: {', '.join(PRESETS)} (default tiny)")
    g.add_argument("--config", metavar="FILE.toml",
                   help="parameters from TOML (keys as in `rowstat presets --toml`; "
                        "`preset = NAME` starts from a preset)")


def cmd_generate(args) -> int:
    from gen.emit import emit
    params = _params(args)
    manifest = emit(params, args.output)
    if args.json:
        print(json.dumps(manifest, indent=2))
    else:
        for stem, top in manifest["tops"].items():
            print(f"wrote {Path(args.output) / top['file']}  ({len(top['ports'])} ports)")
        print(f"wrote {Path(args.output) / 'manifest.json'}  (preset {params.name}, "
              f"hash {params.hardware_hash})")
    return 0


def cmd_presets(args) -> int:
    from hw.params import dump_toml
    if args.toml:
        print(dump_toml(preset(args.toml)), end="")
        return 0
    print(f"{'preset':8} {'array':>6} {'data':>4} {'psum':>4} {'ifmap/filter/psum spad':>23} "
          f"{'GLB KiB':>7} {'banks':>5} {'MHz':>4}")
    for p in PRESETS.values():
        spads = f"{p.ifmap_spad_depth}/{p.filter_spad_depth}/{p.psum_spad_depth}"
        print(f"{p.name:8} {p.rows:>3}x{p.cols:<2} {p.data_width:>4} {p.psum_width:>4} "
              f"{spads:>23} {p.glb_kib:>7} {p.glb_banks:>5} {p.clock_mhz:>4}")
    return 0


def _pe_regressions(params, sims, *, cases: int, seed: int, stall: float,
                    waves: bool, progress) -> list[dict]:
    from gen.emit import cached_verilog
    from gen.run import CACHE
    from tb.pe_regression import run_pe_regression
    verilog = cached_verilog(params, "rowstat_pe", CACHE)
    summaries = []
    for sim in sims:
        progress(f"[{sim}] PE regression: {cases} random + representative passes "
                 f"(stall probability {stall}) ...")
        summaries.append(run_pe_regression(params, verilog, sim=sim,
                                           work=verilog.parent / "pe_sim", count=cases,
                                           seed=seed, stall_prob=stall, waves=waves))
    return summaries


def _print_summary(s: dict, *, detail: bool):
    verdict = "PASSED" if s["passed"] else "FAILED"
    print(f"[{s['sim']}] PE regression {verdict}: {s['cases_run']}/{s['cases']} passes, "
          f"{s['words_checked']} psum words and all counters compared with the golden model "
          f"(build {s['build_seconds']} s, simulation {s['sim_seconds']} s)")
    if detail or not s["passed"]:
        for r in s["results"]:
            mark = "ok " if r["match"] and r["counters_match"] else "BAD"
            gated = r["gated_macs"] / max(1, r["gated_macs"] + r["macs"])
            print(f"  {mark} {r['case']:<60} cycles {r['cycles']:>6}  "
                  f"MAC slots {r['mac_slots']:>6}  gated {gated:6.1%}")
            if r["first_mismatch"]:
                print(f"      first mismatch: {r['first_mismatch']}")
    if not s["passed"]:
        print(f"  simulator log: {s['log']}")


def cmd_pe(args) -> int:
    from tb.runner import SIMULATORS
    params = _params(args)
    sims = SIMULATORS if args.sim == "both" else (args.sim,)
    quiet = args.json
    summaries = _pe_regressions(params, sims, cases=args.cases, seed=args.seed,
                                stall=args.stall_prob, waves=args.waves,
                                progress=(lambda m: None) if quiet else
                                (lambda m: print(m, flush=True)))
    if args.json:
        print(json.dumps(summaries if len(summaries) > 1 else summaries[0], indent=2))
    else:
        for s in summaries:
            _print_summary(s, detail=args.verbose)
    return 0 if all(s["passed"] for s in summaries) else 1


def cmd_demo(args) -> int:
    """The main job: generate a design point, verify its PE and a network on both simulators
    against the golden model, and report the network's and AlexNet's performance."""
    from gen.emit import emit
    from gen.mapper import map_layer
    from gen.perf import estimate
    from gen.workload import parse_layer
    from tb.runner import SIMULATORS
    t0 = time.monotonic()
    params = _params(args)
    out = Path(args.output or f"build/{params.name}")
    say = lambda m: print(m, flush=True)  # noqa: E731
    say(f"rowstat demo: preset {params.name} -- {params.rows}x{params.cols} PEs, "
        f"{params.data_width}-bit data, {params.psum_width}-bit psums, spads "
        f"{params.ifmap_spad_depth}/{params.filter_spad_depth}/{params.psum_spad_depth} words, "
        f"{params.glb_kib} KiB global buffer")
    say(f"[1/4] generating Verilog into {out}/ ...")
    manifest = emit(params, out)
    for top in manifest["tops"].values():
        size = (out / top["file"]).stat().st_size
        say(f"      {out / top['file']}: {size / 1e6:.1f} MB, {len(top['ports'])} ports")
    say("[2/4] PE regression on both simulators")
    checked = _pe_regressions(params, SIMULATORS, cases=args.cases, seed=args.seed,
                              stall=0.3, waves=False, progress=lambda m: say("      " + m))
    for s in checked:
        _print_summary(s, detail=False)
    from gen.run import run_network
    from gen.workload import NETWORKS
    if args.network not in NETWORKS:
        raise UsageError(f"unknown network {args.network!r}: allowed {', '.join(NETWORKS)}")
    layers = list(NETWORKS[args.network])
    say(f"[3/4] network {args.network} ({len(layers)} layers chained through DRAM) on the whole "
        f"accelerator: Verilator with nominal DRAM, Icarus with random DRAM stalls")
    runs = []
    rlc = params.rlc_transport
    for sim, stall in (("verilator", 0.0), ("icarus", 0.2)):
        r = run_network(params, layers, sim=sim, seed=args.seed, stall_prob=stall,
                        progress=lambda m: say("      " + m), rlc=rlc)
        runs.append(r)
        c = r["rtl_counters"]
        words = sum(lay.N * lay.M * lay.E * lay.F for lay in layers)
        say(f"      [{sim}] {'MATCH' if r['match'] else 'MISMATCH'}: {words} output words of "
            f"{len(layers)} layers vs golden; {r['passes']} passes, {r['cycles']:,} cycles "
            f"(model {r['model_cycles']:,}), PE utilization {r['pe_utilization']:.1%}, access "
            f"counters {'= model' if r['counters_match_model'] else '!= model'}, DMA-in "
            f"overlapped {c.get('overlap_cycles', 0):,} cycles")
        if rlc:
            raw = sum(row["raw_bytes"] for row in r["layers"])
            coded = sum(row["rlc_bytes"] for row in r["layers"])
            say(f"      [{sim}] feature maps crossed DRAM RLC-coded: {coded:,} B for {raw:,} B "
                f"plain; DRAM {r['dram_read_bytes']:,} B read, {r['dram_write_bytes']:,} B "
                f"written")
    names = ("conv1", "conv2", "conv3", "conv4", "conv5")
    table = params
    try:
        for name in names:
            map_layer(parse_layer(f"alexnet.{name}"), params)
    except ValueError as e:
        table = preset("eyeriss")
        say(f"      ({params.name} cannot run AlexNet -- {e} -- so the table is for eyeriss)")
    say(f"[4/4] AlexNet CONV1-5 on {table.name}, batch 1, from the model (which equals the RTL's "
        f"counters)")
    print(f"      {'layer':6} {'passes':>6} {'cycles':>11} {'PE util':>8} {'DRAM MB':>8}")
    total_c = total_m = 0
    for name in names:
        lay = parse_layer(f"alexnet.{name}")
        mp = map_layer(lay, table)
        est = estimate(mp)
        total_c += est.cycles
        total_m += lay.macs
        print(f"      {name:6} {mp.passes:>6} {est.cycles:>11,} "
              f"{est.pe_utilization(table):>8.1%} "
              f"{(est.dram_read_bytes + est.dram_write_bytes) / 1e6:>8.2f}")
    if total_c:
        print(f"      {'all':6} {'':>6} {total_c:>11,} "
              f"{total_m / (total_c * table.num_pes):>8.1%}")
    ok = all(s["passed"] for s in checked) and all(r["match"] and r["counters_match_model"]
                                                    for r in runs)
    print(f"\n{'PASS' if ok else 'FAIL'}: preset {params.name}: PE and network {args.network} "
          f"match the golden model on {', '.join(SIMULATORS)} ({time.monotonic() - t0:.0f} s)")
    return 0 if ok else 1


def cmd_run(args) -> int:
    """Map a layer, simulate it on the generated RTL, check every output word."""
    from gen.run import run_layer
    from gen.workload import parse_layer
    params = _params(args)
    if (args.layer is None) == (args.network is None):
        raise UsageError("give --layer SPEC or --network NAME (one of them)")
    if not 0.0 <= args.stall_prob < 1.0:
        raise UsageError(f"--stall-prob = {args.stall_prob} is out of range: allowed 0 <= P < 1")
    if args.dram_latency < 1:
        raise UsageError(f"--dram-latency = {args.dram_latency} is out of range: allowed >= 1")
    from hw.params import dram_word_interval
    try:
        dram_word_interval(params.dram_width, args.dram_bandwidth)
    except ValueError as e:
        raise UsageError(f"--dram-bandwidth: {e}") from None
    # with --json, progress goes to stderr so that stdout is one JSON object
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if args.json else \
        (lambda m: print(m, flush=True))
    if args.network is not None:
        return _run_network(args, params, say)
    layer = parse_layer(args.layer)
    r = run_layer(params, layer, dataflow=args.dataflow, sim=args.sim, seed=args.seed,
                  stall_prob=args.stall_prob, dram_latency=args.dram_latency,
                  waves=args.waves, progress=say, dram_bytes_per_cycle=args.dram_bandwidth)
    if args.json:
        out = {k: r[k] for k in (
            "match", "sim", "preset", "layer", "spec", "dataflow", "mapping", "passes",
            "cycles", "macs",
            "pe_utilization", "gated_macs", "glb_reads", "glb_writes", "dram_read_bytes",
            "dram_write_bytes", "model_cycles", "model_pe_utilization",
            "counters_match_model", "counter_diffs", "first_mismatch", "stall_prob",
            "dram_latency", "dram_bytes_per_cycle", "seed", "build_seconds", "sim_seconds", "wall_seconds")}
        out["rtl_counters"] = r["rtl_counters"]
        print(json.dumps(out, indent=2))
    else:
        c = r["rtl_counters"]
        verdict = "MATCH" if r["match"] else "MISMATCH"
        print(f"{verdict}: {r['layer']} ({r['spec']}) on {r['preset']}, {r['sim']}: every "
              f"output word {'equals' if r['match'] else 'compared with'} the golden model")
        if r["first_mismatch"]:
            mm = r["first_mismatch"]
            print(f"  first difference at n={mm['n']} m={mm['m']} e={mm['e']} f={mm['f']}: "
                  f"got {mm['got']}, expected {mm['expected']} ({mm['count']} words differ)")
        if c and "macs" not in c:      # counters = "cycles": no access counters
            print(f"  {r['passes']} passes, {r['cycles']:,} cycles (model "
                  f"{r['model_cycles']:,}), PE utilization {r['pe_utilization']:.1%}, "
                  f"{r['macs']:,} MACs (the hardware counts only cycles and passes)")
        elif c:
            gated = c["gated_macs"] / max(1, c["macs"] + c["gated_macs"])
            print(f"  {r['passes']} passes, {r['cycles']:,} cycles (model {r['model_cycles']:,}), "
                  f"PE utilization {r['pe_utilization']:.1%}, {r['macs']:,} MACs, "
                  f"{gated:.1%} of MAC slots zero-gated")
            print(f"  phases: DMA in {c['dma_in_cycles']:,} ({c['overlap_cycles']:,} of them "
                  f"beside the executor), filter load {c['fload_cycles']:,}, compute "
                  f"{c['compute_cycles']:,}, write-back {c['writeback_cycles']:,}; the "
                  f"executor waited {c['dma_stall_cycles']:,} cycles for DMA-in and "
                  f"{c['dram_wr_stall']:,} for DRAM writes")
            print(f"  traffic: DRAM {r['dram_read_bytes']:,} B read, {r['dram_write_bytes']:,} B "
                  f"written; global buffer {c['glb_reads']:,} reads, {c['glb_writes']:,} writes")
            print(f"  counters vs model: "
                  f"{'all access counts equal' if r['counters_match_model'] else r['counter_diffs']}")
        else:
            print(f"  the simulation did not finish; see {r['log']}")
        print(f"  {r['wall_seconds']:.1f} s (build {r['build_seconds']:.1f} s, simulation "
              f"{r['sim_seconds']:.1f} s)")
        if r.get("waves"):
            print(f"  waveforms: {r['waves']}")
    return 0 if r["match"] else 1


def _run_network(args, params, say) -> int:
    from gen.run import run_network
    from gen.workload import NETWORKS
    if args.network not in NETWORKS:
        raise UsageError(f"unknown network {args.network!r}: allowed {', '.join(NETWORKS)}")
    r = run_network(params, list(NETWORKS[args.network]), dataflow=args.dataflow,
                    sim=args.sim, seed=args.seed,
                    stall_prob=args.stall_prob, dram_latency=args.dram_latency,
                    waves=args.waves, progress=say, rlc=not args.no_rlc,
                    dram_bytes_per_cycle=args.dram_bandwidth)
    if args.json:
        out = {k: v for k, v in r.items() if k not in ("model_counters",)}
        print(json.dumps(out, indent=2))
    else:
        print(f"{'MATCH' if r['match'] else 'MISMATCH'}: network {args.network} on "
              f"{r['preset']}, {r['sim']}: {len(r['layers'])} layers in one program, each "
              f"reading the previous layer's output from DRAM")
        for row in r["layers"]:
            rlc = (f", RLC {row['rlc_bytes']:,} of {row['raw_bytes']:,} B "
                   f"(x{row['compression_ratio']:.2f}, {row['entropy_ratio']:.2f} x entropy)"
                   if "rlc_bytes" in row else "")
            print(f"  {'ok ' if row['match'] else 'BAD'} {row['layer']:22} {row['spec']:58} "
                  f"{row['dataflow']} {row['passes']:>4} passes, output "
                  f"{row['output_zero_fraction']:.0%} zeros{rlc}")
            if row.get("first_mismatch"):
                print(f"      first difference: {row['first_mismatch']}")
        print(f"  {r['passes']} passes, {r['cycles']:,} cycles (model {r['model_cycles']:,}), "
              f"PE utilization {r['pe_utilization']:.1%}; counters vs model: "
              f"{'all access counts equal' if r['counters_match_model'] else r['counter_diffs']}")
        if r["dram_read_bytes"] is not None:
            print(f"  DRAM {r['dram_read_bytes']:,} B read, {r['dram_write_bytes']:,} B written "
                  f"({'feature maps RLC-coded' if r['rlc'] else 'uncompressed'}); DMA "
                  f"overlapped {r['overlap_cycles']:,} cycles, executor waited for DMA "
                  f"{r['dma_stall_cycles']:,}")
        print(f"  {r['wall_seconds']:.1f} s (build {r['build_seconds']:.1f} s, simulation "
              f"{r['sim_seconds']:.1f} s)")
    return 0 if r["match"] else 1


def cmd_estimate(args) -> int:
    """Map a network (or one layer) with the chosen dataflow(s) and report cycles, accesses
    per level and energy from the model alone (no simulation)."""
    from gen.energy import TABLES, load_table
    from gen.estimate import (OBJECTIVES, dataflow_choices, estimate_network, format_report,
                              load_network, plot_report)
    from gen.workload import parse_layer
    params = _params(args)
    if (args.layer is None) == (args.network is None):
        raise UsageError("give --network NAME|FILE or --layer SPEC (one of them)")
    if args.dataflow not in dataflow_choices():
        raise UsageError(f"--dataflow = {args.dataflow!r} is invalid: allowed "
                         f"{', '.join(dataflow_choices())}")
    if args.objective not in OBJECTIVES:
        raise UsageError(f"--objective = {args.objective!r} is invalid: allowed "
                         f"{', '.join(OBJECTIVES)}")
    if args.batch is not None and args.batch < 1:
        raise UsageError(f"--batch = {args.batch} is out of range: allowed >= 1")
    if not 0.0 <= args.zero_fraction <= 1.0:
        raise UsageError(f"--zero-fraction = {args.zero_fraction} is out of range: allowed "
                         f"0..1")
    tables = list(TABLES.values())
    if args.energy_table:
        tables.append(load_table(args.energy_table))
    if args.network is not None:
        name, layers = load_network(args.network)
    else:
        layer = parse_layer(args.layer)
        name, layers = layer.name, [layer]
    if args.batch is not None:
        layers = [layer.replace(N=args.batch) for layer in layers]
    report = estimate_network(params, layers, name=name, dataflow=args.dataflow,
                              objective=args.objective, tables=tables,
                              zero_fraction=args.zero_fraction)
    report["batch"] = args.batch
    if args.layer is not None and report["unmappable"]:
        raise UsageError(f"{name}: {report['unmappable'][0]['error']}")
    if not report["total"]["layers"]:
        raise UsageError(f"no layer of {name} can be mapped on {params.name}: "
                         f"{report['unmappable'][0]['layer']}: "
                         f"{report['unmappable'][0]['error']}")
    if args.plot:
        plot_report(report, args.plot)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
        if args.plot:
            print(f"wrote {args.plot}")
    return 0


def cmd_synth(args) -> int:
    """Synthesize, place and route a design point for an FPGA target; print the report."""
    from gen.fpga import TARGETS, FitError, FlowError, format_report, synthesize
    if args.target not in TARGETS:
        raise UsageError(f"unknown target {args.target!r}: allowed {', '.join(TARGETS)}")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError(f"--timeout = {args.timeout:g} is out of range: allowed > 0 seconds")
    params = _params(args)
    out = Path(args.output or f"build/fpga/{params.name}-{args.target}")
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if args.json else \
        (lambda m: print(m, flush=True))
    try:
        r = synthesize(params, args.target, out, clock_mhz=args.clock,
                       bitstream=args.bitstream, timeout=args.timeout, progress=say)
    except FlowError as e:      # a tool failed, or the design does not fit (FitError)
        hint = ""
        if isinstance(e, FitError) and TARGETS[args.target].family == "ice40":
            hint = " -- the pico preset is the largest found to fit an iCE40UP5K"
        print(f"rowstat: error: {e}{hint}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        print(format_report(r))
        print(f"wrote {out / 'report.txt'} and {out / 'fpga_report.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="rowstat", description="Generator of Eyeriss-style row-stationary CNN "
                "accelerators: Verilog, cocotb regressions against a numpy golden model.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    g = sub.add_parser("generate", help="write the Verilog and manifest.json of a design point")
    _add_design(g)
    g.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    g.add_argument("--json", action="store_true", help="print the manifest as JSON")
    g.set_defaults(func=cmd_generate)

    r = sub.add_parser("pe", help="run the PE regression (cocotb, golden model) on a simulator")
    _add_design(r)
    r.add_argument("--sim", default="verilator", choices=["verilator", "icarus", "both"],
                   help="simulator (default verilator)")
    r.add_argument("--cases", type=int, default=12, metavar="N",
                   help="random passes besides the representative ones (default 12)")
    r.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    r.add_argument("--stall-prob", type=float, default=0.3, metavar="P",
                   help="probability of an idle/stall cycle on every stream (default 0.3)")
    r.add_argument("--waves", action="store_true", help="dump waveforms in the build folder")
    r.add_argument("--json", action="store_true", help="print one JSON summary")
    r.add_argument("-v", "--verbose", action="store_true", help="one line per pass")
    r.set_defaults(func=cmd_pe)

    d = sub.add_parser("demo", help="the main job: generate a preset (default tiny), verify "
                       "its PE and a five-layer network on Verilator and Icarus, report")
    _add_design(d)
    d.add_argument("--network", default="alexnet-mini", metavar="NAME",
                   help="the chain of layers to run on the whole accelerator "
                        "(default alexnet-mini)")
    d.add_argument("--cases", type=int, default=8, metavar="N",
                   help="random passes besides the representative ones (default 8)")
    d.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    d.add_argument("-o", "--output", metavar="DIR", help="work directory (default build/PRESET)")
    d.set_defaults(func=cmd_demo)

    u = sub.add_parser("run", help="map a conv layer (or a chain of layers), simulate it on the "
                       "generated RTL, check every output word against the golden model, "
                       "compare with the model")
    _add_design(u)
    u.add_argument("--network", metavar="NAME",
                   help="consecutive layers in one program, each reading the previous "
                        "layer's output from DRAM: lenet5 or alexnet-mini (layers must "
                        "chain: each layer's input shape is the previous one's output)")
    u.add_argument("--layer", metavar="SPEC",
                   help="C=3,M=8,H=16,W=16,R=3,S=3,stride=1,pad=1[,N=2][,relu=1][,shift=6]"
                        "[,groups=2] or a name: lenet5.conv1, alexnet.conv3, vgg16.conv1_1, "
                        "resnet50.res2a_branch2b, alexnet-mini.conv2, ...")
    u.add_argument("--sim", default="verilator", choices=["verilator", "icarus"],
                   help="simulator (default verilator)")
    u.add_argument("--dataflow", default="rs", choices=["rs", "ws", "os", "auto"],
                   help="row-stationary, weight-stationary, output-stationary, or auto: per "
                        "layer the one with the fewest modeled cycles among the design's "
                        "dataflows (default rs)")
    u.add_argument("--no-rlc", action="store_true",
                   help="--network: move feature maps uncompressed (default: every layer's "
                        "output RLC-coded, every input but the first read that way)")
    u.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seed of the random weights and activations (default 0)")
    u.add_argument("--stall-prob", type=float, default=0.0, metavar="P",
                   help="random DRAM backpressure and extra latency (default 0: nominal DRAM)")
    u.add_argument("--dram-latency", type=int, default=16, metavar="N",
                   help="DRAM cycles from read request to first beat (default 16)")
    u.add_argument("--dram-bandwidth", type=float, default=None, metavar="B",
                   help="DRAM bytes per core cycle on each port (default: a word per cycle, "
                        "the port's width; slower: a whole number of cycles per word)")
    u.add_argument("--waves", action="store_true", help="dump waveforms in the run folder")
    u.add_argument("--json", action="store_true", help="print one JSON object")
    u.set_defaults(func=cmd_run)

    e = sub.add_parser("estimate", help="cycles, accesses per level and energy of a network "
                       "or layer from the model (no simulation)")
    _add_design(e)
    e.add_argument("--network", metavar="NAME|FILE",
                   help="lenet5, alexnet, alexnet-mini, vgg16, resnet50, mobilenet_v1, or a file "
                        "with one layer spec per line ([LABEL:] SPEC, # comments)")
    e.add_argument("--layer", metavar="SPEC", help="one layer, as `run --layer` takes it")
    e.add_argument("--dataflow", default="auto", metavar="NAME",
                   help="a dataflow the mapper offers (gen.mapper.DATAFLOWS), or auto: per "
                        "layer the one with the lowest energy (or cycles) (default auto)")
    e.add_argument("--objective", default="energy", metavar="energy|latency",
                   help="what auto minimizes (default energy)")
    e.add_argument("--batch", type=int, metavar="N", help="images per layer (sets N)")
    e.add_argument("--zero-fraction", type=float, default=0.0, metavar="P",
                   help="share of zeros in the ifmaps, for zero-gating (default 0: dense)")
    e.add_argument("--energy-table", metavar="FILE.toml",
                   help="a third energy table (mac, rf, inter_pe, glb, dram costs per data "
                        "word); auto ranks by it when given, else by the eyeriss table")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--plot", metavar="OUT.png",
                   help="write per-layer energy breakdown bars (one panel per table)")
    e.set_defaults(func=cmd_estimate)

    y = sub.add_parser("synth", help="synthesize, place and route for an FPGA with Yosys and "
                       "nextpnr (YoWASP): LUTs, flip-flops, DSPs, block RAMs, Fmax")
    _add_design(y)
    y.add_argument("--target", required=True, metavar="NAME",
                   help="ulx3s-85f, icebreaker (boards, amaranth-boards platforms) or "
                        "ecp5-85f, up5k (bare devices, constraints/)")
    y.add_argument("--clock", type=float, metavar="MHZ",
                   help="timing target of a device target (default: its constraints/ file); "
                        "boards run from their oscillator")
    y.add_argument("--bitstream", action="store_true",
                   help="also pack a bitstream (boards always do)")
    y.add_argument("--timeout", type=float, metavar="S",
                   help="give up on a tool run after S seconds (default: no limit)")
    y.add_argument("--json", action="store_true", help="print the report as one JSON object")
    y.add_argument("-o", "--output", metavar="DIR",
                   help="output directory (default build/fpga/PRESET-TARGET)")
    y.set_defaults(func=cmd_synth)

    s = sub.add_parser("presets", help="list the presets (or print one as TOML)")
    s.add_argument("--toml", metavar="NAME", help="print preset NAME as a TOML config")
    s.set_defaults(func=cmd_presets)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        if getattr(args, "cases", 0) < 0:
            raise UsageError(f"--cases = {args.cases} is out of range: allowed >= 0")
        return args.func(args)
    except (UsageError, ValueError) as e:
        print(f"rowstat: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # a simulator that is not installed, a failed build
        print(f"rowstat: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
