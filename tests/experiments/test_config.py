"""Experiment configs: override routing, parsing once (settings and every task), errors."""

import ml_collections
import pytest

from ssm_jax.experiments import config as excfg
from ssm_jax.experiments.paper1 import ablation, gen_gap
from ssm_jax.training.config import ConfigError, default_config


def _with_tasks():
    return ml_collections.ConfigDict(dict(
        experiment=dict(name="x", num_seeds=2, first_seed=0),
        tasks={"a": default_config(), "b": default_config()}))


def test_overrides_route_to_experiment_one_task_or_every_task():
    cfg = _with_tasks()
    excfg.apply_experiment_overrides(cfg, ["experiment.num_seeds=5", "tasks.a.train.num_steps=7",
                                           "optim.lr=0.5", "data.seed=3"])
    assert cfg.experiment.num_seeds == 5
    assert (cfg.tasks.a.train.num_steps, cfg.tasks.b.train.num_steps) == (7, 1000)
    assert cfg.tasks.a.optim.lr == cfg.tasks.b.optim.lr == 0.5
    assert cfg.tasks.a.data.seed == cfg.tasks.b.data.seed == 3
    with pytest.raises(ConfigError, match="unknown task 'c'"):
        excfg.apply_experiment_overrides(cfg, ["tasks.c.seed=1"])
    with pytest.raises(ConfigError, match="unknown config key"):
        excfg.apply_experiment_overrides(cfg, ["optim.nope=1"])


def test_single_config_keeps_its_experiment_section():
    cfg = default_config()
    cfg.experiment = ml_collections.ConfigDict(dict(name="x", lambdas=[0.0, 1e-3]))
    excfg.apply_experiment_overrides(cfg, ["experiment.lambdas=[0, 0.1]", "train.num_steps=3"])
    assert cfg.experiment.lambdas == [0, 0.1] and cfg.train.num_steps == 3
    assert list(excfg.trainer_configs(cfg)) == ["main"]
    assert "experiment" not in excfg.trainer_configs(cfg)["main"]


def test_load_validates_every_trainer_config():
    with pytest.raises(ConfigError, match="train.num_steps"):
        excfg.load("configs/paper1/gen_gap.py:tiny", gen_gap.Settings, ["train.num_steps=0"])
    with pytest.raises(ConfigError, match="task 'digits'"):
        excfg.load("configs/paper1/ablation.py:tiny", ablation.Settings, ["model.d_model=0"])


def test_load_validates_the_settings_once():
    exp = excfg.load("configs/paper1/gen_gap.py:tiny", gen_gap.Settings,
                     ["experiment.lambdas=[0, 0.1]"])
    assert exp.settings.lambdas == (0.0, 0.1) and exp.single
    for override, needle in [("experiment.lambdas=[0, -1]", "'experiment.lambdas[1]' must be >= 0"),
                             ("experiment.lambdas=[0, nan]", "experiment.lambdas"),
                             ("experiment.checkpoint=first", "'experiment.checkpoint'"),
                             ("experiment.num_seeds=0", "'experiment.num_seeds' must be > 0"),
                             ("experiment.colour=1", "unknown config key 'experiment.colour'")]:
        with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace("]", r"\]")):
            excfg.load("configs/paper1/gen_gap.py:tiny", gen_gap.Settings, [override])
    with pytest.raises(ConfigError, match="'experiment.variants\\[0\\]' = 'all' is not allowed"):
        excfg.load("configs/paper1/ablation.py:tiny", ablation.Settings,
                   ["experiment.variants=['all']"])
