"""`rowstat run --dataflow`: bad choices and layers a dataflow cannot map are one-line errors
with exit status 2 (the simulation runs are in tests/test_dataflow_top_cocotb.py)."""

import pytest

from gen.cli import main


@pytest.mark.parametrize("args, message", [
    (["--dataflow", "xs"], "invalid choice: 'xs'"),
    (["--layer", "alexnet-mini.conv2", "--dataflow", "os"],
     "R*S = 25 > 12: an OS PE holds a whole filter channel"),
    (["--layer", "alexnet.conv1", "--dataflow", "ws"], "R = 11 > rows = 6"),
    (["--layer", "alexnet.conv1", "--dataflow", "auto"], "R*S = 121 > 12"),
])
def test_run_dataflow_errors(args, message, capsys):
    if "--layer" not in args:
        args = [*args, "--layer", "alexnet-mini.conv3"]
    assert main(["run", "--preset", "tiny", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_run_dataflow_not_generated(tmp_path, capsys):
    cfg = tmp_path / "rs.toml"
    cfg.write_text('preset = "tiny"\ndataflows = ["rs"]\n')
    assert main(["run", "--config", str(cfg), "--layer", "alexnet-mini.conv3",
                 "--dataflow", "ws"]) == 2
    err = capsys.readouterr().err
    assert "dataflow 'ws' is not in the accelerator's dataflows rs" in err, err
