"""A trained run loads back from its work directory alone: config.json parses again (the
round trip), and load_run gives the model and variables whose test metrics are the report's;
the learning rates are logged."""

from __future__ import annotations

import json

import pytest

from ssm_jax.data import get_dataset
from ssm_jax.training import loop
from ssm_jax.training.config import load_config, parse_config

from .conftest import SMOKE

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fast_compile")]


def test_config_json_round_trip_and_load_run(tmp_path):
    cfg = load_config(SMOKE)
    cfg.model.update(d_model=4, n_layers=1)
    cfg.model.ssm.update(d_state=4)
    cfg.train.update(dict(batch_size=16, num_steps=10, log_every=5, eval_every=5,
                          checkpoint_every=5, progress=False))
    cfg = parse_config(cfg)
    report = loop.train_and_evaluate(cfg, str(tmp_path))
    saved = json.loads((tmp_path / "config.json").read_text())
    assert parse_config(saved) == cfg  # what config.json holds parses to the same config
    run = loop.load_run(str(tmp_path))
    model, variables, config = run
    assert model is run.model and variables is run.variables and config is run.cfg
    assert run.cfg == cfg and run.which == "best" and run.step == report["best_step"]
    test = loop.evaluate_model(run.model, run.variables, get_dataset(cfg.data).test,
                               cfg.train.eval_batch_size)
    assert test == pytest.approx(report["test"], rel=1e-6)
    last = loop.load_run(str(tmp_path), checkpoint="last")
    assert last.step == 10
    # the learning rates of the logged steps are those of the optimizer's schedules
    from ssm_jax.training.metrics import read_metrics
    from ssm_jax.training.optim import make_schedule

    logged = {(r["step"], r["metric"]): r["value"] for r in read_metrics(str(tmp_path / "metrics.csv"))
              if r["split"] == "optim"}
    o = cfg.optim
    for step in (5, 10):
        for key, lr in (("lr", o.lr), ("ssm_lr", o.ssm_lr)):
            want = float(make_schedule(lr, 10, o.warmup_steps, o.schedule)(step - 1))
            assert logged[(step, key)] == pytest.approx(want, rel=1e-6)


def test_load_run_of_a_directory_without_a_run_is_one_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a trained run: config.json, dataset.json"):
        loop.load_run(str(tmp_path))
