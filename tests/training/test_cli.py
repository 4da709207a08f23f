"""`ssm-jax train` end to end in subprocesses on configs/smoke.py: outputs, final report,
resume after SIGKILL, data parallelism over 4 host devices, divergence."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from ssm_jax.training.metrics import read_metrics

from .conftest import (FAST, NUM_STEPS, REPO, cli_env, error_lines, restore_checkpoint, run_cli,
                       step_dirs, train_args)
from .test_checkpoint_metrics import read_scalars

pytestmark = pytest.mark.slow

RESUMED = re.compile(r"resumed from checkpoint at step (\d+)")


def curve(workdir, split="train", metric="loss") -> dict:
    return {r["step"]: r["value"] for r in read_metrics(os.path.join(workdir, "metrics.csv"))
            if r["split"] == split and r["metric"] == metric}


def assert_no_duplicate_rows(workdir):
    keys = [(r["step"], r["split"], r["metric"]) for r in read_metrics(os.path.join(workdir, "metrics.csv"))]
    assert len(keys) == len(set(keys)), "duplicate (step, split, metric) rows in metrics.csv"


def assert_trees_close(a, b, atol=1e-6):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0, atol=atol)


def test_train_writes_metrics_tensorboard_config_checkpoints_and_report(smoke_run):
    workdir = Path(smoke_run["workdir"])
    config = json.loads((workdir / "config.json").read_text())
    assert config["train"]["num_steps"] == NUM_STEPS and config["model"]["layer"] == "s4d"
    assert config["train"]["progress"] is False  # the overrides are what was saved

    # metrics.csv: train every log_every=5 steps, validation every eval_every=10 and at the end.
    assert sorted(curve(workdir)) == list(range(5, NUM_STEPS + 1, 5))
    val_acc = curve(workdir, "validation", "accuracy")
    assert sorted(val_acc) == [10, 20, 30, 40, 45]
    assert_no_duplicate_rows(workdir)
    assert all(np.isfinite(v) for v in curve(workdir).values())

    # TensorBoard event files with the same scalars.
    scalars = read_scalars(workdir / "tensorboard")
    assert [s for s, _ in scalars["train/loss"]] == sorted(curve(workdir))
    np.testing.assert_allclose([v for _, v in scalars["train/loss"]],
                               [curve(workdir)[s] for s in sorted(curve(workdir))], rtol=1e-6)
    assert [s for s, _ in scalars["validation/accuracy"]] == sorted(val_acc)

    # Checkpoints every 5 steps and at the end, the last 2 kept; the best by validation.
    assert step_dirs(workdir / "checkpoints" / "last") == [40, NUM_STEPS]
    report = json.loads((workdir / "report.json").read_text())
    best = max(sorted(val_acc), key=lambda s: (val_acc[s], -s))  # first step of the maximum
    assert report["best_step"] == best
    assert step_dirs(workdir / "checkpoints" / "best") == [best]

    # The report's metrics are those of the best-validation checkpoint, and the output says so.
    assert report["validation"]["accuracy"] == pytest.approx(val_acc[best], abs=1e-6)
    assert report["validation"]["loss"] == pytest.approx(
        curve(workdir, "validation", "loss")[best], rel=1e-5)
    assert set(report["test"]) >= {"accuracy", "loss"} and report["num_steps"] == NUM_STEPS
    line = (f"test accuracy at the best-validation checkpoint (step {best}): "
            f"{report['test']['accuracy']:.4f}")
    assert line in smoke_run["stdout"]
    assert (workdir / "learning_curves.png").exists()


def test_plot_command_and_rerun_of_a_finished_run(smoke_run, tmp_path):
    workdir = tmp_path / "A"
    shutil.copytree(smoke_run["workdir"], workdir)
    (workdir / "learning_curves.png").unlink()
    ssm_jax = os.path.join(os.path.dirname(sys.executable), "ssm-jax")
    proc = run_cli([ssm_jax, "plot", str(workdir)], timeout=120)
    assert proc.returncode == 0, proc.stderr
    png = workdir / "learning_curves.png"
    assert proc.stdout.strip() == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The same command again in the same workdir resumes from the final checkpoint: no more
    # training, no duplicated rows, the same report
    rows = read_metrics(str(workdir / "metrics.csv"))
    report = json.loads((workdir / "report.json").read_text())
    # (with the progress bar on, as by default)
    again = run_cli(train_args(workdir, *[o for o in FAST if "progress" not in o]))
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resumed from checkpoint at step {NUM_STEPS}" in again.stdout
    assert f"{NUM_STEPS}/{NUM_STEPS}" in again.stderr  # the tqdm bar, complete
    assert read_metrics(str(workdir / "metrics.csv")) == rows
    again_report = json.loads((workdir / "report.json").read_text())
    assert again_report["best_step"] == report["best_step"]
    assert again_report["test"] == pytest.approx(report["test"], rel=1e-6)


def test_sigkill_and_resume_reaches_the_same_parameters(smoke_run, tmp_path):
    a = Path(smoke_run["workdir"])
    b = tmp_path / "B"
    args = train_args(b, *FAST)
    proc = subprocess.Popen(args, env=cli_env(), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        while not step_dirs(b / "checkpoints" / "last"):  # a finished step, not orbax's tmp dir
            assert proc.poll() is None, f"run ended before its first checkpoint:\n{proc.stdout.read()}"
            assert time.monotonic() < deadline, "no checkpoint after 300 s"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (b / "report.json").exists()

    resumed = run_cli(args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    match = RESUMED.search(resumed.stdout)
    assert match and 5 <= int(match.group(1)) < NUM_STEPS, resumed.stdout

    # Same final state as the uninterrupted run: parameters, optimizer state, RNG, data order.
    step_a, ckpt_a = restore_checkpoint(a / "checkpoints" / "last")
    step_b, ckpt_b = restore_checkpoint(b / "checkpoints" / "last")
    assert step_a == step_b == NUM_STEPS
    assert_trees_close(ckpt_a["state"]["params"], ckpt_b["state"]["params"])
    assert_trees_close(ckpt_a["state"]["opt_state"], ckpt_b["state"]["opt_state"])
    np.testing.assert_array_equal(ckpt_a["state"]["rng"], ckpt_b["state"]["rng"])
    assert ckpt_a["data"] == ckpt_b["data"]
    assert step_dirs(b / "checkpoints" / "last") == step_dirs(a / "checkpoints" / "last")
    assert step_dirs(b / "checkpoints" / "best") == step_dirs(a / "checkpoints" / "best")

    # metrics.csv: no duplicated rows, the same curves as the uninterrupted run.
    assert_no_duplicate_rows(b)
    for split, metric in [("train", "loss"), ("train", "accuracy"), ("validation", "accuracy")]:
        ca, cb = curve(a, split, metric), curve(b, split, metric)
        assert sorted(ca) == sorted(cb), (split, metric)
        np.testing.assert_allclose([cb[s] for s in sorted(cb)], [ca[s] for s in sorted(ca)],
                                   rtol=1e-6, err_msg=f"{split}/{metric}")
    report_a = json.loads((a / "report.json").read_text())
    report_b = json.loads((b / "report.json").read_text())
    assert report_a["best_step"] == report_b["best_step"]
    assert report_b["test"] == pytest.approx(report_a["test"], rel=1e-6)


def test_data_parallel_on_four_devices(smoke_run, tmp_path):
    # A batch size that does not split over 4 devices: one clear line, nothing created.
    bad = tmp_path / "bad"
    proc = run_cli(train_args(bad, *FAST, "--config.train.batch_size=30"), devices=4, timeout=120)
    assert proc.returncode != 0
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert "train.batch_size=30" in lines[0] and "number of devices (4)" in lines[0]
    assert not bad.exists()

    # 4 devices (batch 32 = 4 x 8) follow the same loss curve as 1 device.
    d4 = tmp_path / "D4"
    proc = run_cli(train_args(d4, *FAST), devices=4)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, four = curve(smoke_run["workdir"]), curve(d4)
    assert sorted(one) == sorted(four)
    np.testing.assert_allclose([four[s] for s in sorted(four)], [one[s] for s in sorted(one)],
                               rtol=1e-4)
    v1, v4 = curve(smoke_run["workdir"], "validation", "loss"), curve(d4, "validation", "loss")
    np.testing.assert_allclose([v4[s] for s in sorted(v4)], [v1[s] for s in sorted(v1)], rtol=1e-4)


def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    """lr=1e30: step 1 moves every parameter by ~1e30 (finite), step 2 overflows."""
    workdir = tmp_path / "nan"
    proc = run_cli(train_args(
        workdir, "--config.train.num_steps=40", "--config.train.checkpoint_every=1",
        "--config.train.log_every=5", "--config.train.eval_every=20",
        "--config.optim.lr=1e30", "--config.optim.ssm_lr=1e30", "--config.optim.schedule=constant",
        "--config.optim.warmup_steps=0", "--config.train.progress=false"))
    assert proc.returncode == 3, proc.stderr[-3000:]
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert "at step 2" in lines[0] and "metric 'loss' is nan" in lines[0], lines[0]
    assert "last good checkpoint (step 1)" in lines[0]
    assert step_dirs(workdir / "checkpoints" / "last") == [1]
    _, ckpt = restore_checkpoint(workdir / "checkpoints" / "last")
    for leaf in jax.tree.leaves(ckpt["state"]["params"]):
        assert np.all(np.isfinite(leaf))
    assert not (workdir / "report.json").exists()
