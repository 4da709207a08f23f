"""Sweeps over the trainer: a run's config is the task's with checked changes."""

import pytest

from ssm_jax.experiments import sweeps
from ssm_jax.training.config import ConfigError, default_config, parse_config


def test_run_config_copies_and_validates():
    base = parse_config(default_config())
    cfg = sweeps.run_config(base, **{"seed": 4, "bound.reg_lambda": 0.1})
    assert (cfg.seed, cfg.bound.reg_lambda, cfg.train.progress) == (4, 0.1, False)
    assert (base.seed, base.bound.reg_lambda, base.train.progress) == (0, 0.0, True)
    with pytest.raises(ConfigError):
        sweeps.run_config(base, **{"bound.reg_lambda": -1.0})


def test_check_runs_refuses_a_directory_of_another_config(tmp_path):
    from ssm_jax.training.config import save_config

    base = parse_config(default_config())
    run = sweeps.Run("r", sweeps.run_config(base))
    sweeps.check_runs([run], str(tmp_path))  # nothing there yet
    save_config(run.cfg, str(tmp_path / "runs" / "r"))
    sweeps.check_runs([run], str(tmp_path))  # the same config
    other = sweeps.Run("r", sweeps.run_config(base, **{"optim.lr": 0.5}))
    with pytest.raises(ValueError, match=r"different config \(optim.lr\)"):
        sweeps.check_runs([other], str(tmp_path))
    with pytest.raises(ValueError, match="not unique"):
        sweeps.check_runs([run, run], str(tmp_path))
