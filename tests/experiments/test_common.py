"""The shared experiment helpers: override routing, validation, tables."""

import ml_collections
import pytest

from experiments import common
from ssm_jax.training.config import ConfigError, default_config


def _with_tasks():
    return ml_collections.ConfigDict(dict(
        experiment=dict(name="x", num_seeds=2, first_seed=0),
        tasks={"a": default_config(), "b": default_config()}))


def test_overrides_route_to_experiment_one_task_or_every_task():
    cfg = _with_tasks()
    common.apply_experiment_overrides(cfg, ["experiment.num_seeds=5", "tasks.a.train.num_steps=7",
                                            "optim.lr=0.5", "data.seed=3"])
    assert cfg.experiment.num_seeds == 5
    assert (cfg.tasks.a.train.num_steps, cfg.tasks.b.train.num_steps) == (7, 1000)
    assert cfg.tasks.a.optim.lr == cfg.tasks.b.optim.lr == 0.5
    assert cfg.tasks.a.data.seed == cfg.tasks.b.data.seed == 3
    with pytest.raises(ConfigError, match="unknown task 'c'"):
        common.apply_experiment_overrides(cfg, ["tasks.c.seed=1"])
    with pytest.raises(ConfigError, match="unknown config key"):
        common.apply_experiment_overrides(cfg, ["optim.nope=1"])


def test_single_config_keeps_its_experiment_section():
    cfg = default_config()
    cfg.experiment = ml_collections.ConfigDict(dict(name="x", lambdas=[0.0, 1e-3]))
    common.apply_experiment_overrides(cfg, ["experiment.lambdas=[0, 0.1]", "train.num_steps=3"])
    assert cfg.experiment.lambdas == [0, 0.1] and cfg.train.num_steps == 3
    assert list(common.trainer_configs(cfg)) == ["main"]
    assert "experiment" not in common.trainer_configs(cfg)["main"]


def test_load_validates_every_trainer_config():
    with pytest.raises(ConfigError, match="train.num_steps"):
        common.load_experiment_config("configs/paper1/gen_gap.py:tiny", ["train.num_steps=0"])
    with pytest.raises(ConfigError, match="task 'digits'"):
        common.load_experiment_config("configs/paper1/ablation.py:tiny", ["model.d_model=0"])


def test_run_config_copies_and_validates():
    base = default_config()
    cfg = common.run_config(base, **{"seed": 4, "bound.reg_lambda": 0.1})
    assert (cfg.seed, cfg.bound.reg_lambda, cfg.train.progress) == (4, 0.1, False)
    assert (base.seed, base.bound.reg_lambda, base.train.progress) == (0, 0.0, True)
    with pytest.raises(ConfigError):
        common.run_config(base, **{"bound.reg_lambda": -1.0})


def test_tables(tmp_path):
    assert common.mean_std([1.0, 3.0]) == (2.0, pytest.approx(2 ** 0.5))
    assert common.mean_std([2.0]) == (2.0, 0.0)
    assert common.pm(0.12345, 0.01) == "0.123 ± 0.01"
    rows = [{"a": 1, "b": 0.5}, {"a": 2, "b": float("nan")}]
    assert common.markdown_table(rows, ["a", "b"]) == "| a | b |\n|---|---|\n| 1 | 0.5 |\n| 2 | - |"
    path = common.write_csv(str(tmp_path / "t.csv"), rows, ["a", "b"])
    assert open(path).read().splitlines() == ["a,b", "1,0.5", "2,nan"]
