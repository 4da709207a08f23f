"""Experiment configs: loaded, overridden and parsed once, at the edge.

An experiment config file (``configs/<paper>/<name>.py``, ``get_config(scale)``) returns a
ConfigDict with an ``experiment`` section (the experiment's own settings) and either

* the sections of one trainer config (``ssm_jax.training.config.default_config()``), or
* ``tasks``: one full trainer config per task (e.g. the LRA tasks).

Command-line overrides ``--config.KEY=VALUE``: keys under ``experiment.`` go to the settings,
``tasks.<task>.KEY`` to one task, any other key to every trainer config. :func:`load` parses
the settings with the experiment's ``Settings`` dataclass (option fields) and every trainer
config with :func:`~ssm_jax.training.config.parse_config`, so everything downstream gets
typed, frozen values.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections

from ssm_jax import options as opt
from ssm_jax.training.config import (Config, ConfigError, apply_overrides, load_config,
                                     parse_config)


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A loaded experiment: its settings, one parsed trainer config per task, and where it came
    from. Single-task configs have the one task ``"main"``."""

    spec: str
    settings: Any
    tasks: dict
    single: bool

    def to_dict(self) -> dict:
        """What ``config.json`` of the experiment holds."""
        settings = opt.to_dict(self.settings)
        if self.single:
            return {**self.tasks["main"].to_dict(), "experiment": settings}
        return {"experiment": settings, "tasks": {k: v.to_dict() for k, v in self.tasks.items()}}

    @property
    def main(self) -> Config:
        return self.tasks["main"]


def trainer_configs(cfg) -> dict:
    """``{task: trainer ConfigDict}`` of an experiment ConfigDict (``{"main": ...}`` without
    tasks)."""
    if "tasks" in cfg:
        return dict(cfg.tasks.items())
    return {"main": ml_collections.ConfigDict({k: v for k, v in cfg.items() if k != "experiment"})}


def apply_experiment_overrides(cfg, overrides):
    """Route ``KEY=VALUE`` overrides (see the module docstring); returns ``cfg``."""
    for item in overrides:
        key = item.partition("=")[0]
        if key.startswith("experiment.") or "tasks" not in cfg:
            apply_overrides(cfg, [item])
        elif key.startswith("tasks."):
            task, _, rest = item[len("tasks."):].partition(".")
            if task not in cfg.tasks:
                raise ConfigError(f"unknown task {task!r} in override {item!r}; "
                                  f"tasks: {', '.join(cfg.tasks.keys())}")
            apply_overrides(cfg.tasks[task], [rest])
        else:
            for task_cfg in cfg.tasks.values():
                apply_overrides(task_cfg, [item])
    return cfg


def _with_defaults(spec: str, settings_cls):
    """The experiment ConfigDict of ``spec``, every setting the file leaves out at its default
    (so every setting can be overridden)."""
    cfg = load_config(spec)
    if "experiment" not in cfg:
        raise ConfigError(f"config {spec!r} has no 'experiment' section")
    for key, value in opt.defaults(settings_cls).items():
        if key not in cfg.experiment:
            cfg.experiment[key] = value
    return cfg


def has_key(cfg, key: str) -> bool:
    """Whether an override of ``key`` reaches a key of the experiment ConfigDict ``cfg`` (routed
    as :func:`apply_experiment_overrides` routes it: for a multi-task config, a trainer key
    reaches it when some task has it)."""
    def walk(node, parts):
        for part in parts:
            if not isinstance(node, ml_collections.ConfigDict) or part not in node:
                return False
            node = node[part]
        return True

    parts = key.split(".")
    if parts[0] in ("experiment", "tasks") or "tasks" not in cfg:
        return walk(cfg, parts)
    return any(walk(task, parts) for task in cfg.tasks.values())


def applicable(spec: str, settings_cls, overrides) -> list:
    """The ``KEY=VALUE`` overrides whose key the experiment config ``spec`` has (see
    :func:`has_key`): what ``ssm-jax reproduce --config.KEY=VALUE`` applies to it."""
    cfg = _with_defaults(spec, settings_cls)
    return [item for item in overrides if has_key(cfg, item.partition("=")[0])]


def load(spec: str, settings_cls, overrides=()) -> Experiment:
    """Load ``name-or-path[:scale]``, fill the settings the file leaves out with their
    defaults, apply the overrides, parse the settings and every task.

    Raises:
      ConfigError: one line naming the key (prefixed with the task for multi-task configs).
    """
    cfg = _with_defaults(spec, settings_cls)
    apply_experiment_overrides(cfg, overrides)
    settings = opt.parse(settings_cls, cfg.experiment, "experiment.")
    tasks = {}
    for name, task_cfg in trainer_configs(cfg).items():
        try:
            tasks[name] = parse_config(task_cfg)
        except ConfigError as e:
            raise ConfigError(f"task {name!r}: {e}" if "tasks" in cfg else str(e)) from None
    return Experiment(spec, settings, tasks, single="tasks" not in cfg)


def seeds(settings) -> list:
    """``num_seeds`` seeds starting at ``first_seed`` (both settings of the experiment)."""
    return [settings.first_seed + i for i in range(settings.num_seeds)]
