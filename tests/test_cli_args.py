"""The `ssm-jax` command line in-process: overrides written with `=` or a space, --version,
and `ssm-jax options` into a pipe that closes early."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from ssm_jax import __version__, cli


def test_overrides_with_equals_or_a_space():
    rest, overrides = cli.split_overrides(
        ["train", "--config", "configs/smoke.py", "--config.seed=3", "--config.model.d_model",
         "32", "--workdir", "w"])
    assert rest == ["train", "--config", "configs/smoke.py", "--workdir", "w"]
    assert overrides == ["seed=3", "model.d_model=32"]


def test_an_override_without_a_value_is_one_line_error(capsys):
    with pytest.raises(SystemExit) as e:
        cli.split_overrides(["train", "--config.seed", "--workdir", "w"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--config.seed needs a value" in err[0]


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"ssm-jax {__version__}"


def test_options_into_a_pipe_closed_early_exits_cleanly():
    """The reader of the pipe is gone before the command writes (as `| head` after its lines):
    exit 0, no traceback."""
    code = "import sys; from ssm_jax import cli; sys.exit(cli.main(['options']))"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # no reader: the first write fails with EPIPE
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_train_prints_a_start_up_block(tmp_path, capsys):
    """The config, devices, processes, the config's fingerprint, parameter count and the
    schedule, once, before training (stdout);
    stderr stays free for errors."""
    assert cli.main(["train", "--config", "configs/smoke.py", "--workdir", str(tmp_path / "w"),
                     "--config.train.num_steps", "2", "--config.train.progress=false",
                     "--config.model.d_model=4", "--config.model.n_layers=1"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == "config configs/smoke.py (configs/smoke.py)"  # the config and its file
    assert lines[1].startswith("ssm-jax ") and "device(s)" in lines[1] and "process 0 of 1" in lines[1]
    assert re.search(r": config [0-9a-f]{12}, s4d model, \d+ parameters, dataset digits", lines[2])
    assert lines[3].startswith("2 steps")
    assert "ssm-jax " not in err
