"""Checkpoints (last k + best by score, with the data iterator state) and metrics files (CSV
that survives a resume without duplicates, TensorBoard events, PNG curves)."""

from __future__ import annotations

import csv
import glob
import os
import struct

import jax.numpy as jnp
import numpy as np
import pytest

from ssm_jax.training.checkpoint import Checkpoints
from ssm_jax.training.metrics import MetricsWriter, plot_metrics, read_metrics

from .conftest import step_dirs


def tree(step):
    return {"step": jnp.int32(step), "params": {"w": jnp.full((3,), float(step)), "b": jnp.zeros(2)}}


def test_keeps_the_last_k_and_the_best(tmp_path):
    ckpt = Checkpoints(str(tmp_path), keep=2)
    scores = {1: 0.2, 2: 0.7, 3: 0.4, 4: 0.5}
    best = None
    for step, score in scores.items():
        if best is None or score > best:  # as the training loop does
            best = score
            ckpt.save_best(step, tree(step), {"epoch": 0, "position": step}, score)
        ckpt.save(step, tree(step), {"epoch": 0, "position": step})
    assert ckpt.latest_step() == 4
    assert step_dirs(tmp_path / "checkpoints" / "last") == [3, 4]
    assert step_dirs(tmp_path / "checkpoints" / "best") == [2]
    assert ckpt.best_step() == 2 and ckpt.best_score() == pytest.approx(0.7)

    state, data = ckpt.restore(3, tree(0))
    np.testing.assert_array_equal(state["params"]["w"], np.full(3, 3.0))
    assert int(state["step"]) == 3 and data == {"epoch": 0, "position": 3}
    state, data = ckpt.restore(2, tree(0), which="best")
    np.testing.assert_array_equal(state["params"]["w"], np.full(3, 2.0))
    assert data["position"] == 2
    ckpt.close()

    # A new process (resume) sees the same checkpoints and best score.
    again = Checkpoints(str(tmp_path), keep=2)
    assert again.latest_step() == 4 and again.best_step() == 2
    assert again.best_score() == pytest.approx(0.7)
    again.close()


def test_empty_workdir_has_no_checkpoint(tmp_path):
    ckpt = Checkpoints(str(tmp_path), keep=3)
    assert ckpt.latest_step() is None and ckpt.best_step() is None and ckpt.best_score() is None
    ckpt.close()


# ------------------------------------------------------------------ metrics


def rows_of(path):
    return [(r["step"], r["split"], r["metric"], r["value"]) for r in read_metrics(path)]


def read_scalars(event_dir):
    """{tag: [(step, value)]} from tensorboardX event files (TFRecord framing, Event protos)."""
    from tensorboardX.proto import event_pb2

    out = {}
    for path in sorted(glob.glob(os.path.join(event_dir, "events.out.tfevents.*"))):
        data = open(path, "rb").read()
        pos = 0
        while pos + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            for v in event.summary.value:
                out.setdefault(v.tag, []).append((event.step, v.simple_value))
    return out


def test_metrics_writer_csv_and_tensorboard(tmp_path):
    w = MetricsWriter(str(tmp_path))
    w.write(10, "train", {"loss": 2.0, "accuracy": 0.25})
    w.write(10, "validation", {"loss": 2.5})
    w.write(20, "train", {"loss": 1.5, "accuracy": 0.5})
    w.close()
    with open(tmp_path / "metrics.csv") as f:
        assert next(csv.reader(f)) == ["step", "split", "metric", "value"]
    assert rows_of(tmp_path / "metrics.csv") == [
        (10, "train", "loss", 2.0), (10, "train", "accuracy", 0.25), (10, "validation", "loss", 2.5),
        (20, "train", "loss", 1.5), (20, "train", "accuracy", 0.5)]
    scalars = read_scalars(tmp_path / "tensorboard")
    assert scalars["train/loss"] == [(10, 2.0), (20, 1.5)]
    assert scalars["validation/loss"] == [(10, 2.5)]


def test_metrics_writer_resume_drops_rows_after_the_checkpoint(tmp_path):
    w = MetricsWriter(str(tmp_path))
    for step in (10, 20, 30):
        w.write(step, "train", {"loss": 1.0 / step})
    w.close()
    with open(tmp_path / "metrics.csv", "a") as f:
        f.write("40,train,lo")  # a row cut short by a killed run
    w = MetricsWriter(str(tmp_path), resume_step=20)
    w.write(30, "train", {"loss": 1.0 / 30})
    w.close()
    rows = rows_of(tmp_path / "metrics.csv")
    assert [r[0] for r in rows] == [10, 20, 30]
    assert len({r[:3] for r in rows}) == len(rows)


def test_plot_metrics_writes_a_png(tmp_path):
    w = MetricsWriter(str(tmp_path), tensorboard=False)
    for step in (5, 10, 15):
        w.write(step, "train", {"loss": 1.0 / step, "accuracy": step / 20})
    w.write(15, "validation", {"loss": 0.2, "accuracy": 0.7})
    w.close()
    out = plot_metrics(str(tmp_path))
    assert out == str(tmp_path / "learning_curves.png")
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FileNotFoundError, match="metrics.csv"):
        plot_metrics(str(tmp_path / "empty"))


def test_plot_command_errors_are_one_line(tmp_path, capsys):
    from ssm_jax import cli

    good = tmp_path / "good"
    w = MetricsWriter(str(good), tensorboard=False)
    w.write(5, "train", {"loss": 1.0})
    w.close()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "metrics.csv").write_text("step,split,metric,value\n")
    header = tmp_path / "header"
    header.mkdir()
    (header / "metrics.csv").write_text("a,b\n1,2\n")
    malformed = tmp_path / "malformed"
    malformed.mkdir()
    (malformed / "metrics.csv").write_text("step,split,metric,value\nfive,train,loss,1.0\n")
    cases = [
        ([str(tmp_path / "missing")], "no metrics.csv to plot: workdir"),
        ([str(empty)], "has no metric rows yet"),
        ([str(header)], "not a metrics file"),
        ([str(malformed)], "malformed row at line 2"),
        ([str(good), "--out", str(tmp_path / "no" / "such" / "dir.png")], "cannot write the plot"),
        ([str(good), "--out", str(tmp_path / "curves.xyz")], "cannot write the plot"),
    ]
    for args, needle in cases:
        assert cli.main(["plot", *args]) == 2, args
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines
    assert cli.main(["plot", str(good)]) == 0
