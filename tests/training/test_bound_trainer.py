"""The trainer with the paper-1 options on: the regularizer is in the logged loss, and the init
scaling rule leaves every layer's tau at 1 on the init batch in the mode training uses
(BatchNorm with batch statistics), with the configured measure and read-out. Each test fails
when its feature is off or a no-op."""

from __future__ import annotations

import numpy as np
import pytest

from ssm_jax.bound import layer_measures
from ssm_jax.data import BatchIterator, get_dataset
from ssm_jax.training import loop
from ssm_jax.training import run as run_module
from ssm_jax.training.config import load_config, parse_config
from ssm_jax.training.metrics import read_metrics

from .conftest import SMOKE

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fast_compile")]

REAL_COMPILE_STEP = run_module.compile_step


def bound_cfg(norm="batch", pooling="mean", **bound):
    cfg = load_config(SMOKE)
    cfg.model.update(d_model=4, n_layers=2, norm=norm, prenorm=False, pooling=pooling)
    cfg.model.ssm.update(d_state=4)
    cfg.train.update(dict(batch_size=16, eval_batch_size=512, num_steps=1, log_every=1,
                          eval_every=1, checkpoint_every=1, progress=False))
    cfg.bound.update(init_batch_size=32, **bound)
    return cfg


def capture_initial_state(monkeypatch):
    """Record the state the first train step receives (the variables after init)."""
    seen = {}

    def compile_step(step_fn, stacked):
        train_step = REAL_COMPILE_STEP(step_fn, stacked)

        def step(state, batch, weights):
            seen.setdefault("state", state)
            seen.setdefault("batch", batch)
            return train_step(state, batch, weights)

        return step

    monkeypatch.setattr(run_module, "compile_step", compile_step)
    return seen


def first_step_metrics(workdir):
    rows = read_metrics(str(workdir / "metrics.csv"))
    return {r["metric"]: r["value"] for r in rows if r["step"] == 1 and r["split"] == "train"}


def test_logged_loss_contains_lambda_times_the_regularizer(tmp_path, monkeypatch):
    lam = 0.37
    seen = capture_initial_state(monkeypatch)
    cfg = bound_cfg(reg_lambda=lam)
    loop.train_and_evaluate(cfg, str(tmp_path))
    logged = first_step_metrics(tmp_path)
    # separately: the batch of step 1, the variables the step started from, and the taus of a
    # train-mode forward pass (mean over channels, sum over layers; the default read-out of a
    # mean-pooled model: the final time at layer 0, the time mean at the top layer)
    pcfg = parse_config(cfg)
    ds = get_dataset(pcfg.data)
    batch = next(BatchIterator(ds.train, pcfg.train.batch_size, seed=pcfg.seed))
    np.testing.assert_array_equal(np.asarray(seen["batch"]["inputs"]), batch["inputs"])
    state = seen["state"]
    model = loop.build_model(pcfg.model, ds.info)
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    taus = layer_measures(model, variables, batch["inputs"], readout="top_mean")
    expected = lam * sum(float(np.mean(t)) for t in taus)
    assert expected > 1e-3
    np.testing.assert_allclose(logged["loss"] - logged["task_loss"], expected, rtol=2e-3)
    np.testing.assert_allclose(logged["reg"], expected / lam, rtol=2e-3)
    # the last-step read-out is a different number: the option reaches the loss
    last = lam * sum(float(np.mean(t)) for t in layer_measures(model, variables, batch["inputs"]))
    assert abs(last - expected) > 0.05 * expected


@pytest.mark.parametrize("measure,readout", [("paper", "auto"), ("covariance", "last")])
def test_init_scaling_gives_tau_one_in_train_mode(tmp_path, monkeypatch, measure, readout):
    seen = capture_initial_state(monkeypatch)
    cfg = bound_cfg(init_scaling=True, measure=measure, readout=readout)
    loop.train_and_evaluate(cfg, str(tmp_path))
    pcfg = parse_config(cfg)
    ds = get_dataset(pcfg.data)
    batch = loop.init_batch(ds.train, pcfg.bound.init_batch_size, pcfg.seed)
    model = loop.build_model(pcfg.model, ds.info)
    state = seen["state"]
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    resolved = "top_mean" if readout == "auto" else readout  # the smoke model mean-pools
    taus = layer_measures(model, variables, batch["inputs"], measure=measure, readout=resolved)
    assert len(taus) == 2
    for tau in taus:
        np.testing.assert_allclose(tau, 1.0, rtol=1e-3)
    # another measure or read-out is not 1: the configured ones were used
    other = layer_measures(model, variables, batch["inputs"],
                           measure="covariance" if measure == "paper" else "paper",
                           readout=resolved)
    assert max(float(np.abs(t - 1).max()) for t in other) > 0.05
