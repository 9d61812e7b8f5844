"""pf-train --teacher / --init: a wrong or missing weights file is one line about that flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from pf_stream.train import cli
from tests.train_helpers import make_pairs

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "train" / "tiny.yaml")
SHIPPED_LITE = REPO / "pf_stream" / "weights" / "lite.safetensors"


def _errors(args: list[str], capsys) -> list[str]:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--config", TINY, "--no-progress", *args])
    assert exc.value.code == 2
    return [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("pf-train: error:")]


@pytest.mark.parametrize(
    "flag, name, fragment",
    [
        # a `lite` file as teacher said "pass --model lite": an option that does not fix it
        ("--teacher", "lite", "holds `lite` weights, but the teacher must be trained `full` weights"),
        ("--teacher", "missing", "--teacher"),
        ("--init", "missing", "--init"),
    ],
)
def test_weights_flag_errors_name_the_flag(tmp_path, capsys, flag, name, fragment):
    data = make_pairs(tmp_path / "set", ["a", "b"])
    path = SHIPPED_LITE if name == "lite" else tmp_path / "nope.safetensors"
    err = _errors(["--data", str(data), "--out", str(tmp_path / "run"), flag, str(path)], capsys)
    assert len(err) == 1 and fragment in err[0], err
    assert "--weights" not in err[0] and "--model" not in err[0]
    assert not (tmp_path / "run" / "checkpoint.safetensors").exists()
