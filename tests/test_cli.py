"""The command line: generate, manifest, exit statuses, one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gen.cli import main
from tb.runner import setup_simulator


def run(*args):
    """The installed console script, as a user runs it. The timeout only guards against a
    hang: generating eyeriss (Verilog, then a Verilator lint) takes about 100 s alone on two
    cores and several times that on a machine busy with other jobs."""
    exe = Path(sys.executable).with_name("rowstat")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=1200)


def test_help_lists_the_commands():
    r = run("--help")
    assert r.returncode == 0
    for cmd in ("generate", "pe", "demo", "presets"):
        assert cmd in r.stdout


def test_generate_eyeriss_writes_lint_clean_verilog_and_manifest(tmp_path):
    r = run("generate", "--preset", "eyeriss", "-o", str(tmp_path))
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["parameters"]["rows"] == 12 and manifest["parameters"]["cols"] == 14
    ports = {p["name"]: p for p in manifest["tops"]["rowstat_pe"]["ports"]}
    assert ports["psum_out__payload"] == {"name": "psum_out__payload", "dir": "out",
                                          "width": 48}
    assert ports["ifmap__payload"]["width"] == 16
    verilog = (tmp_path / "rowstat_pe.v").read_text()
    assert "module rowstat_pe(" in verilog
    setup_simulator("verilator")
    lint = subprocess.run(["verilator", "--lint-only", "-Wno-fatal",
                           str(tmp_path / "rowstat_pe.v")],
                          capture_output=True, text=True, env=os.environ, timeout=120)
    assert lint.returncode == 0, lint.stderr


@pytest.mark.parametrize("args, message", [
    (["generate", "--config", "nonexistent.toml"], "cannot read config 'nonexistent.toml'"),
    (["generate", "--preset", "huge"], "unknown preset 'huge': allowed pico, tiny, small, eyeriss"),
    (["generate", "--preset", "tiny", "--config", "x.toml"], "not both"),
    (["pe", "--preset", "tiny", "--sim", "modelsim"], "invalid choice: 'modelsim'"),
    (["pe", "--preset", "tiny", "--stall-prob", "1.5"], "stall_prob = 1.5 is out of range"),
    (["run", "--preset", "tiny"], "give --layer SPEC or --network NAME"),
    (["run", "--preset", "tiny", "--network", "nosuch"], "unknown network 'nosuch': allowed"),
    (["run", "--preset", "tiny", "--network", "vgg16"], "layers must chain"),
    (["run", "--preset", "tiny", "--layer", "alexnet.conv1"],
     "R = 11 > rows = 6: filter height exceeds the PE array"),
    (["run", "--preset", "tiny", "--layer", "C=3,M=4,H=8,Q=2"], "unknown"),
    (["run", "--preset", "tiny", "--network", "lenet5", "--dram-bandwidth", "3"],
     "--dram-bandwidth: DRAM bandwidth = 3 bytes per cycle is invalid for a 64-bit port: "
     "allowed >= 8 or a whole number of cycles per word (8, 4, 2, 1"),
    (["run", "--preset", "tiny", "--layer", "C=1,M=1,H=4,R=3", "--dram-bandwidth", "0"],
     "DRAM bandwidth = 0.0 bytes per cycle is out of range: allowed > 0"),
])
def test_bad_input_exits_2_with_one_line(args, message, tmp_path, capsys):
    extra = ["-o", str(tmp_path)] if args[0] == "generate" else []
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_network_without_rlc_hardware_says_use_no_rlc(tmp_path, capsys):
    cfg = tmp_path / "narrow.toml"
    cfg.write_text('preset = "tiny"\nrlc_word_bits = 32\n')
    assert main(["run", "--config", str(cfg), "--network", "alexnet-mini"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot move RLC-coded feature maps" in err
    assert "use --no-rlc" in err


def test_bad_toml_value_exits_2_with_one_line(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("data_width = 40\n")
    r = run("generate", "--config", str(cfg), "-o", str(tmp_path / "out"))
    assert r.returncode == 2
    assert r.stderr == "rowstat: error: data_width = 40 is out of range: allowed 4..16\n"
    assert not (tmp_path / "out").exists()


def test_presets_toml_feeds_generate(tmp_path, capsys):
    assert main(["presets", "--toml", "small"]) == 0
    (tmp_path / "small.toml").write_text(capsys.readouterr().out)
    assert main(["generate", "--config", str(tmp_path / "small.toml"),
                 "-o", str(tmp_path / "v")]) == 0
    assert (tmp_path / "v" / "rowstat_pe.v").exists()
