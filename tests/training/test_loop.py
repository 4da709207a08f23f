"""The training loop in-process on a tiny model: non-finite values stop training and keep the
last good checkpoint; the final report uses the best-validation checkpoint."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssm_jax.training import loop
from ssm_jax.training import run as run_module
from ssm_jax.training.config import load_config
from ssm_jax.training.metrics import read_metrics

from .conftest import SMOKE, restore_checkpoint, step_dirs

# Compile time dominates: fewer XLA optimizations (tests/conftest.py).
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fast_compile")]

REAL_COMPILE_STEP = run_module.compile_step


def tiny_cfg(**train):
    cfg = load_config(SMOKE)
    cfg.model.update(d_model=4, n_layers=1)
    cfg.model.ssm.update(d_state=4)
    cfg.train.update(dict(batch_size=16, eval_batch_size=512, num_steps=20, log_every=10,
                          eval_every=10, checkpoint_every=5, keep_checkpoints=3, progress=False))
    cfg.train.update(train)
    return cfg


def poison(monkeypatch, bad_step, what):
    """Make the train step go non-finite right after update ``bad_step``: its reported loss
    (``what="loss"``) or the updated parameters (``what="params"``, metrics stay finite)."""

    def compile_step(step_fn, stacked):
        train_step = REAL_COMPILE_STEP(step_fn, stacked)

        def step(state, batch, weights):
            state, metrics = train_step(state, batch, weights)
            if int(state.step) == bad_step:
                if what == "loss":
                    metrics = dict(metrics, loss=jnp.float32(jnp.nan))
                else:
                    state = state.replace(params=jax.tree.map(lambda p: p + jnp.inf, state.params))
            return state, metrics

        return step

    monkeypatch.setattr(run_module, "compile_step", compile_step)


def assert_finite_checkpoint(workdir, step):
    got, out = restore_checkpoint(workdir / "checkpoints" / "last")
    assert got == step
    for leaf in jax.tree.leaves(out["state"]["params"]):
        assert np.all(np.isfinite(leaf))


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    # Checkpoints at 5, 10, ...; NaN at step 7 is noticed at the next boundary (step 10),
    # before step 10 is saved.
    poison(monkeypatch, bad_step=7, what="loss")
    with pytest.raises(loop.NonFiniteError) as e:
        loop.train_and_evaluate(tiny_cfg(), str(tmp_path))
    message = str(e.value)
    assert "metric 'loss' is nan at step 7" in message
    assert "last good checkpoint (step 5)" in message
    assert step_dirs(tmp_path / "checkpoints" / "last") == [5]
    assert_finite_checkpoint(tmp_path, 5)
    rows = read_metrics(str(tmp_path / "metrics.csv"))
    assert rows and max(r["step"] for r in rows) == 5
    assert all(math.isfinite(r["value"]) for r in rows)
    assert not (tmp_path / "report.json").exists()


def test_non_finite_parameters_are_never_checkpointed(tmp_path, monkeypatch):
    # The update of step 10 makes the parameters infinite while its metrics (computed before
    # the update) are finite: step 10 must not be saved.
    poison(monkeypatch, bad_step=10, what="params")
    with pytest.raises(loop.NonFiniteError) as e:
        loop.train_and_evaluate(tiny_cfg(), str(tmp_path))
    message = str(e.value)
    assert "non-finite after step 10" in message and "parameters" in message
    assert "last good checkpoint (step 5)" in message
    assert step_dirs(tmp_path / "checkpoints" / "last") == [5]
    assert step_dirs(tmp_path / "checkpoints" / "best") == []  # step 10 was not evaluated either
    assert_finite_checkpoint(tmp_path, 5)


def test_final_report_uses_the_best_validation_checkpoint(tmp_path, monkeypatch, capsys):
    """Validation accuracy peaks at step 20 of 40: the test metrics are computed with the
    parameters of step 20, not the final ones."""
    accuracy = {10: 0.3, 20: 0.6, 30: 0.4, 40: 0.5}

    def fake_evaluate(eval_step, state, split, batch_size, dp):
        step = int(jax.device_get(state.step))
        return {"accuracy": accuracy[step], "loss": 1.0 - accuracy[step], "at_step": step}

    monkeypatch.setattr(run_module, "evaluate", fake_evaluate)
    cfg = tiny_cfg(num_steps=40, checkpoint_every=10, keep_checkpoints=2)
    report = loop.train_and_evaluate(cfg, str(tmp_path))
    assert report["best_step"] == 20
    assert report["test"]["at_step"] == 20 and report["validation"]["at_step"] == 20
    assert report["validation"]["accuracy"] == 0.6
    assert json.loads((tmp_path / "report.json").read_text())["best_step"] == 20
    assert "best-validation checkpoint (step 20)" in capsys.readouterr().out
    assert step_dirs(tmp_path / "checkpoints" / "best") == [20]
    assert step_dirs(tmp_path / "checkpoints" / "last") == [30, 40]
    val = {r["step"]: r["value"] for r in read_metrics(str(tmp_path / "metrics.csv"))
           if r["split"] == "validation" and r["metric"] == "accuracy"}
    assert val == accuracy
