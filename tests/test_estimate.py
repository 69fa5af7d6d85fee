"""Estimates without simulation: the dataflow choice, network reports and totals, network
files, MobileNet v1, and the `rowstat estimate` command."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import gen.energy as energy_mod
import gen.estimate as est
import gen.mapper as mapper
from gen.cli import main
from gen.energy import LEVELS
from gen.estimate import (available_dataflows, choose, estimate_layer, estimate_network,
                          format_report, load_network)
from gen.mapper import map_layer
from gen.perf import estimate as perf_estimate
from gen.workload import NETWORKS, parse_layer
from hw.params import preset

EYE, TINY = preset("eyeriss"), preset("tiny")


# ---- the choice ---------------------------------------------------------------------------

def _cand(df, energy, cycles):
    return {"dataflow": df, "cycles": cycles, "energy": {"eyeriss": {"total": energy}}}


def test_choose_by_objective():
    cands = [_cand("rs", 10.0, 500), _cand("ws", 8.0, 900), _cand("os", 12.0, 400),
             {"dataflow": "xx", "error": "cannot"}]
    assert choose(cands, "energy", "eyeriss")["dataflow"] == "ws"
    assert choose(cands, "latency", "eyeriss")["dataflow"] == "os"
    # ties go to the other measure, then to the earlier candidate
    tie = [_cand("rs", 8.0, 900), _cand("ws", 8.0, 700), _cand("os", 8.0, 700)]
    assert choose(tie, "energy", "eyeriss")["dataflow"] == "ws"
    tie = [_cand("rs", 9.0, 700), _cand("ws", 8.0, 700)]
    assert choose(tie, "latency", "eyeriss")["dataflow"] == "ws"
    assert choose([{"dataflow": "rs", "error": "no"}], "energy", "eyeriss") is None
    with pytest.raises(ValueError, match="objective = 'speed' is invalid: allowed energy, "
                                         "latency"):
        choose(cands, "speed", "eyeriss")


def test_auto_chooses_among_every_dataflow_the_mapper_offers(monkeypatch):
    """With more dataflows in gen.mapper.DATAFLOWS, auto tries each one the design generates
    and keeps the best for the objective; failures are listed, not fatal."""
    fake = {"rs": _cand("rs", 10.0, 500), "ws": _cand("ws", 8.0, 900),
            "os": {"dataflow": "os", "error": "too big"}}
    tried = []

    def evaluate(params, layer, df, **kw):
        tried.append(df)
        return fake[df]

    monkeypatch.setattr(mapper, "DATAFLOWS", ("rs", "ws", "os"))
    monkeypatch.setattr(est, "evaluate", evaluate)
    layer = parse_layer("alexnet.conv3")
    r = estimate_layer(EYE, layer, dataflow="auto")
    assert tried == ["rs", "ws", "os"] and r["dataflow"] == "ws"
    assert r["candidates"] == {"rs": {"cycles": 500, "energy": {"eyeriss": 10.0}},
                               "ws": {"cycles": 900, "energy": {"eyeriss": 8.0}},
                               "os": {"error": "too big"}}
    assert estimate_layer(EYE, layer, dataflow="auto", objective="latency")["dataflow"] == "rs"
    assert estimate_layer(EYE, layer, dataflow="os")["error"] == "os: too big"
    # only the dataflows the design generates
    tried.clear()
    only = EYE.replace(dataflows=("rs", "os"))
    assert available_dataflows(only) == ("rs", "os")
    assert estimate_layer(only, layer, dataflow="auto")["dataflow"] == "rs"
    assert tried == ["rs", "os"]


@pytest.mark.parametrize("objective", ["energy", "latency"])
@pytest.mark.parametrize("params, net", [(TINY, "alexnet-mini"), (TINY, "lenet5"),
                                         (EYE, "alexnet")])
def test_auto_never_worse_than_any_single_dataflow(params, net, objective):
    flows = available_dataflows(params)
    assert "rs" in flows
    for layer in NETWORKS[net]:
        auto = estimate_layer(params, layer, dataflow="auto", objective=objective)
        assert auto["dataflow"] in flows
        for df in flows:
            one = estimate_layer(params, layer, dataflow=df, objective=objective)
            if one["dataflow"] is None:
                continue
            a, o = auto["energy"]["eyeriss"]["total"], one["energy"]["eyeriss"]["total"]
            if objective == "energy":
                assert a <= o, (layer.name, df)
            else:
                assert auto["cycles"] <= one["cycles"], (layer.name, df)


def test_layer_numbers_are_the_models():
    layer = parse_layer("alexnet.conv2")
    r = estimate_layer(EYE, layer, dataflow="rs")
    m = map_layer(layer, EYE, "rs")
    p = perf_estimate(m)
    assert (r["cycles"], r["macs"], r["macs_done"], r["passes"]) == \
        (p.cycles, layer.macs, p.macs, m.passes)
    assert r["utilization"] == pytest.approx(p.pe_utilization(EYE))
    assert r["accesses"]["dram"] == p.dram_read_words + p.dram_write_words
    for t in ("eyeriss", "horowitz"):
        e = r["energy"][t]
        assert set(e["levels"]) == set(LEVELS)
        assert e["total"] == pytest.approx(sum(e["levels"].values()))
        assert e["per_mac"] == pytest.approx(e["total"] / layer.macs)
    assert r["energy"]["eyeriss"]["levels"]["mac"] == p.macs
    # zero-gating lowers the energy, never the cycles
    z = estimate_layer(EYE, layer, dataflow="rs", zero_fraction=0.5)
    assert z["cycles"] == r["cycles"]
    assert z["energy"]["eyeriss"]["total"] < r["energy"]["eyeriss"]["total"]


def test_a_layer_that_cannot_be_costed_is_reported(monkeypatch):
    monkeypatch.setattr(energy_mod, "PSUM_FORWARD", {})
    r = estimate_layer(TINY, parse_layer("alexnet-mini.conv3"))
    assert r["dataflow"] is None
    assert r["error"].startswith("rs: dataflow 'rs' has no psum-forwarding rule")


def test_network_totals_and_unmappable_layers():
    names = ("dw6", "pw6", "dw7", "pw7", "dw13", "fc")
    layers = [parse_layer(f"mobilenet_v1.{n}") for n in names]
    rep = estimate_network(TINY, layers, name="mobilenet_v1")
    bad = [u["layer"] for u in rep["unmappable"]]
    # 8-bit data with 24-bit psums cannot sum 512 or 1024 products
    assert bad == ["mobilenet_v1.pw7", "mobilenet_v1.fc"]
    assert all("psum_width = 24 too narrow" in u["error"] for u in rep["unmappable"])
    ok = [r for r in rep["layers"] if r["dataflow"] is not None]
    tot = rep["total"]
    assert tot["layers"] == len(ok) == 4
    assert tot["cycles"] == sum(r["cycles"] for r in ok)
    assert tot["macs"] == sum(r["macs"] for r in ok)
    assert sum(tot["dataflows"].values()) == 4
    assert tot["dataflows"] == dict(Counter(r["dataflow"] for r in ok))
    for t in ("eyeriss", "horowitz"):
        assert tot["energy"][t]["total"] == pytest.approx(
            sum(r["energy"][t]["total"] for r in ok))
        assert tot["energy"][t]["per_mac"] == pytest.approx(
            tot["energy"][t]["total"] / tot["macs"])
    for lv in LEVELS:
        assert tot["words"][lv] == pytest.approx(sum(r["words"][lv] for r in ok))
    assert tot["utilization"] == pytest.approx(tot["macs"] / (tot["cycles"] * TINY.num_pes))
    text = format_report(rep)
    assert "mobilenet_v1.fc" in text and "unmappable: rs: psum_width = 24" in text
    assert "2 of 6 layers cannot be mapped on tiny" in text


# ---- networks ---------------------------------------------------------------------------------

def test_mobilenet_v1_shapes():
    net = NETWORKS["mobilenet_v1"]
    assert len(net) == 28
    # Howard et al. 2017: 569 M multiply-adds for the 224 x 224, width 1.0 model
    assert sum(l.macs for l in net) / 1e6 == pytest.approx(569, rel=0.002)
    dw = [l for l in net if l.name.split(".")[1].startswith("dw")]
    assert len(dw) == 13
    assert all(l.groups == l.C == l.M and l.R == l.S == 3 and l.pad == 1 for l in dw)
    pw = [l for l in net if l.name.split(".")[1].startswith("pw")]
    assert all(l.R == l.S == 1 and l.groups == 1 for l in pw)
    for a, b in zip(net[:-2], net[1:-1]):            # each layer feeds the next
        assert (a.M, a.E, a.F) == (b.C, b.H, b.W), (a.name, b.name)
    assert [l.E for l in net[:-1:2]] == [112, 112, 56, 56, 28, 28, 14, 14, 14, 14, 14, 14, 7, 7]
    fc = net[-1]
    assert (fc.C, fc.M, fc.H, fc.R, fc.relu) == (1024, 1000, 1, 1, False)
    assert fc.C == net[-2].M      # after the global average pool
    for name in ("conv1", "dw1", "dw12", "pw13", "fc"):    # each kind maps on eyeriss
        map_layer(parse_layer(f"mobilenet_v1.{name}"), EYE)


def test_network_file(tmp_path):
    f = tmp_path / "mine.net"
    f.write_text("# two layers and a named one\n"
                 "first: C=3,M=8,H=16,R=3,pad=1   # a comment\n"
                 "\n"
                 "C=8,M=8,H=16,R=3,pad=1,relu=1\n"
                 "alexnet-mini.conv3,N=2\n")
    name, layers = load_network(str(f))
    assert name == "mine"
    assert [l.name for l in layers] == ["mine.first", "mine.line4", "alexnet-mini.conv3"]
    assert (layers[0].C, layers[1].relu, layers[2].N) == (3, True, 2)
    assert load_network("lenet5") == ("lenet5", list(NETWORKS["lenet5"]))


@pytest.mark.parametrize("text, message", [
    ("C=3,M=8,H=16,R=3\nC=3,M=8,H=16,Q=3\n", ":2: layer spec: unknown key 'Q'"),
    ("bad label: C=3,M=8,H=16,R=3\n", ":1: label 'bad label' is invalid"),
    ("# nothing\n\n", "no layers"),
    ("C=3,M=8,H=2,R=3\n", ":1: layer C=3,M=8,H=2,W=2,R=3,S=3 has an empty output"),
])
def test_network_file_errors(tmp_path, text, message):
    f = tmp_path / "bad.net"
    f.write_text(text)
    with pytest.raises(ValueError) as err:
        load_network(str(f))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unknown_network():
    with pytest.raises(ValueError, match="unknown network 'nosuch': allowed lenet5, alexnet, "
                                         ".*mobilenet_v1 or a file"):
        load_network("nosuch")


# ---- the command ------------------------------------------------------------------------------

def _json(capsys, *args):
    assert main(["estimate", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_estimate_json_shape(capsys):
    rep = _json(capsys, "--preset", "eyeriss", "--network", "alexnet", "--json")
    assert (rep["preset"], rep["network"], rep["dataflow"], rep["objective"]) == \
        ("eyeriss", "alexnet", "auto", "energy")
    assert rep["rank_table"] == "eyeriss"
    assert rep["available_dataflows"] == ["rs", "ws", "os"]
    assert [r["layer"] for r in rep["layers"]] == [f"alexnet.conv{k}" for k in range(1, 6)]
    for r in rep["layers"]:
        assert r["dataflow"] in ("rs", "ws", "os") and r["requested"] == "auto"
        assert r["cycles"] > 0 and 0 < r["utilization"] <= 1 and r["macs"] > 0
        assert set(r["words"]) == set(LEVELS)
        assert set(r["energy"]) == {"eyeriss", "horowitz"}
        assert r["energy"]["horowitz"]["unit"] == "pJ"
        assert set(r["candidates"]) == {"rs", "ws", "os"}
    assert rep["total"]["macs"] == sum(l.macs for l in NETWORKS["alexnet"])
    assert set(rep["tables"]["horowitz"]["unit_costs"]) == set(r["accesses"])
    assert rep["unmappable"] == []


def test_estimate_text_single_layer_batch_and_user_table(capsys, tmp_path):
    t = tmp_path / "t.toml"
    t.write_text('name = "pj7"\nunit = "pJ"\nmac = 1\nrf = 1\ninter_pe = 1\nglb = 1\n'
                 'dram = 1\n')
    rep = _json(capsys, "--preset", "tiny", "--layer", "alexnet-mini.conv2", "--batch", "3",
                "--energy-table", str(t), "--dataflow", "rs", "--json")
    assert rep["rank_table"] == "pj7" and set(rep["tables"]) == {"eyeriss", "horowitz", "pj7"}
    (r,) = rep["layers"]
    assert r["spec"].endswith("N=3,groups=2,relu=1")
    assert r["macs"] == 3 * parse_layer("alexnet-mini.conv2").macs
    assert r["energy"]["pj7"]["total"] == pytest.approx(sum(r["words"].values()))
    assert main(["estimate", "--preset", "tiny", "--network", "lenet5",
                 "--objective", "latency", "--zero-fraction", "0.4"]) == 0
    out = capsys.readouterr().out
    assert "lenet5 on tiny (6x4 PEs): dataflow auto (objective latency" in out
    assert "ifmaps 40% zeros" in out
    assert "energy by level, eyeriss table" in out and "energy by level, horowitz table" in out
    assert out.count("share ") == 2


def test_estimate_plot_writes_a_png(capsys, tmp_path):
    png = tmp_path / "e.png"
    assert main(["estimate", "--preset", "tiny", "--network", "alexnet-mini",
                 "--plot", str(png)]) == 0
    assert f"wrote {png}" in capsys.readouterr().out
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    import matplotlib.image
    assert matplotlib.image.imread(str(png)).shape[0] >= 400   # two panels


def test_estimate_unmappable_layers_do_not_fail_the_network(capsys, tmp_path):
    f = tmp_path / "two.net"
    f.write_text("mobilenet_v1.dw7\nmobilenet_v1.pw7\n")
    rep = _json(capsys, "--preset", "tiny", "--network", str(f), "--json")
    assert [u["layer"] for u in rep["unmappable"]] == ["mobilenet_v1.pw7"]
    assert rep["total"]["layers"] == 1 and rep["network"] == "two"
    f.write_text("mobilenet_v1.pw7\n")
    assert main(["estimate", "--preset", "tiny", "--network", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no layer of two can be mapped on tiny" in err, err


@pytest.mark.parametrize("args, message", [
    (["--preset", "tiny"], "give --network NAME|FILE or --layer SPEC"),
    (["--preset", "tiny", "--network", "lenet5", "--layer", "lenet5.conv1"], "one of them"),
    (["--preset", "tiny", "--network", "nosuch"], "unknown network 'nosuch'"),
    (["--preset", "tiny", "--network", "lenet5", "--dataflow", "xs"],
     "--dataflow = 'xs' is invalid: allowed rs"),
    (["--preset", "tiny", "--network", "lenet5", "--objective", "speed"],
     "--objective = 'speed' is invalid: allowed energy, latency"),
    (["--preset", "tiny", "--network", "lenet5", "--batch", "0"],
     "--batch = 0 is out of range: allowed >= 1"),
    (["--preset", "tiny", "--network", "lenet5", "--zero-fraction", "1.5"],
     "--zero-fraction = 1.5 is out of range"),
    (["--preset", "tiny", "--layer", "alexnet.conv1"],
     "alexnet.conv1: rs: R = 11 > rows = 6: filter height exceeds the PE array"),
    (["--preset", "tiny", "--network", "lenet5", "--energy-table", "nope.toml"],
     "cannot read energy table 'nope.toml'"),
    (["--preset", "huge", "--network", "lenet5"], "unknown preset 'huge'"),
])
def test_estimate_bad_input_exits_2_with_one_line(args, message, capsys):
    assert main(["estimate", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_estimate_on_hardware_with_one_dataflow(capsys, tmp_path):
    # (the mapper now offers every dataflow a design can have, so auto always has a choice)
    cfg = tmp_path / "c.toml"
    cfg.write_text('preset = "tiny"\ndataflows = ["ws"]\n')
    rep = _json(capsys, "--config", str(cfg), "--network", "alexnet-mini", "--json")
    assert rep["available_dataflows"] == ["ws"]
    assert {r["dataflow"] for r in rep["layers"]} == {"ws"}


def test_estimate_console_script():
    """The acceptance command as a user runs it: stdout is one JSON object."""
    exe = Path(sys.executable).with_name("rowstat")
    r = subprocess.run([str(exe), "estimate", "--preset", "eyeriss", "--network", "alexnet",
                        "--dataflow", "auto", "--json"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert len(rep["layers"]) == 5
    assert all(x["dataflow"] in ("rs", "ws", "os") for x in rep["layers"])
    r = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert "estimate" in r.stdout


# ---- the model's speed-up keeps its results -----------------------------------------------------

def _plain_replay(S, q, p, st, vg, R, ncols, width, F, nrows, ring, a0):
    """The compute-phase replay word by word, as gen.perf._compute_timing first did it (before
    it skipped the words without targets and the channels that cannot wait)."""
    P = p * q * S
    diag, rows_of = {}, []
    for j in range(ncols):
        rows_of.append([diag.setdefault((r // R, r % R + j * st), len(diag))
                        for r in range(vg * R)])
    ends = [[] for _ in diag]
    last_word = [0] * len(diag)
    a = a0                          # word 0 is offered the cycle after
    for col in range(width):
        need = 0 if col < ring else min(F, (col - ring) // st + 1)
        for c in range(q):
            for s in range(vg):
                for h in range(nrows):
                    t = a + 1
                    dg = diag.get((s, h))
                    if dg is not None:
                        e = ends[dg]
                        if need:
                            t = max(t, e[need - 1] + 1)
                        last_word[dg] = t
                        if c == q - 1:
                            x = len(e)
                            while x < F and x * st + S - 1 <= col:
                                start = t + 1 if not e else max(e[-1] + 1, t + 1)
                                e.append(start + P - 1)
                                x += 1
                    a = t
    z = a + 1
    for j in range(ncols):
        ov_prev, out_valid = None, []
        for dg in rows_of[j]:
            load = ends[dg][-1] + 3
            if ov_prev is not None:
                load = max(load, ov_prev)
            ov_prev = load + 1
            out_valid.append(ov_prev)
        top = len(out_valid) - 1
        for r, dg in enumerate(rows_of[j]):
            row_done = max(ends[dg][-1] + 1, last_word[dg] + 1)
            emptied = out_valid[r] + 1 if r == top else out_valid[r + 1]
            z = max(z, max(row_done + 1, emptied) + 1)
        z = max(z, out_valid[top] + 1)
    return z + 1


def test_compute_timing_equals_the_plain_replay():
    import gen.perf as perf
    from gen.mapper import candidates
    cases = set()
    for params, specs in ((TINY, [l.spec() for l in NETWORKS["alexnet-mini"]]
                           + ["C=12,M=8,H=9,W=13,R=2,S=3,stride=3,pad=2"]),
                          (EYE, ["alexnet.conv3", "mobilenet_v1.pw13", "lenet5.conv2"])):
        for spec in specs:
            for m in candidates(parse_layer(spec), params):
                for d, _ in perf._pass_classes(m):
                    cases.add((d.taps, d.chans, d.filters, d.stride, d.vgroups, d.filt_rows,
                               d.ncols, d.padded_width, d.out_width, d.nrows,
                               perf.ring_cols(d.chans, params.ifmap_spad_depth),
                               perf.ifmap_start(params.registered_networks)))
    assert len(cases) > 300
    for args in sorted(cases):
        assert perf._compute_timing.__wrapped__(*args) == _plain_replay(*args), args


def test_bench_dataflows_agrees_with_estimate(capsys):
    """bench/dataflows.py's CONV figures are `rowstat estimate`'s, for every offered dataflow."""
    import runpy
    bench = runpy.run_path(str(Path(__file__).resolve().parents[1] / "bench" / "dataflows.py"))
    assert bench["main"](["--json", "--fc-batch", "1"]) == 0
    res = json.loads(capsys.readouterr().out)
    flows = list(available_dataflows(EYE))
    assert res["dataflows"] == flows
    assert [r["layer"] for r in res["layers"]] == [f"conv{k}" for k in range(1, 6)] + \
        ["fc6", "fc7", "fc8"]
    assert res["layers"][5]["macs"] == 9216 * 4096
    rep = estimate_network(EYE, NETWORKS["alexnet"], dataflow="auto")
    conv = res["totals"]["CONV1-5"]
    assert conv["auto"]["per_mac"] == pytest.approx(rep["total"]["energy"]["eyeriss"]["per_mac"])
    for df in flows:
        if "error" in conv[df]:
            # OS holds a whole R x S filter channel per PE: not CONV1 (11x11), CONV2 (5x5)
            assert df == "os" and all("error" in r["dataflows"][df] for r in res["layers"][:2])
            continue
        one = estimate_network(EYE, NETWORKS["alexnet"], dataflow=df)
        assert conv[df]["per_mac"] == pytest.approx(one["total"]["energy"]["eyeriss"]["per_mac"])
        assert conv["auto"]["per_mac"] <= conv[df]["per_mac"] + 1e-9
    assert bench["main"](["--batch", "0"]) == 2
