"""The training entry point: data -> run -> :func:`~ssm_jax.training.run.fit` -> final report.

``train_and_evaluate(cfg, workdir)`` trains, evaluates on the validation split every
``train.eval_every`` steps, checkpoints every ``train.checkpoint_every`` steps and at the end
(resuming from the latest checkpoint of ``workdir`` when there is one), and reports the test
metrics of the best-validation checkpoint.

The pieces experiments reuse (from :mod:`ssm_jax.training.run`): :func:`build_model`,
:func:`init_batch` (the batch the init rules use), :func:`init_variables`,
:func:`evaluate_model` (metrics of variables on a whole split), and, from
``ssm_jax.training.config``, :func:`~ssm_jax.training.config.save_config` and
:func:`~ssm_jax.training.config.apply_overrides`.
"""

from __future__ import annotations

import jax

from ssm_jax.data import get_dataset
from ssm_jax.training.config import parse_config
from ssm_jax.training.extensions import loss_terms
from ssm_jax.training.run import (NonFiniteError, TrainedRun, build_model, build_run, evaluate,
                                  fit, init_batch, init_variables, load_run, steps_per_epoch)
from ssm_jax.training.sharding import DataParallel, maybe_initialize_distributed
from ssm_jax.training.steps import eval_sums
from ssm_jax.training.workdir import WorkdirLock, prepare_workdir


def evaluate_model(model, variables, split, batch_size: int) -> dict:
    """Mean task loss (and accuracy for classification) of ``variables`` on a whole split, in
    evaluation mode: the trainer's evaluation for any model and variables."""
    step = lambda _, batch: eval_sums(model, variables, batch)
    return evaluate(step, None, split, min(batch_size, len(split)), None)


def train_and_evaluate(cfg, workdir: str) -> dict:
    """Train according to ``cfg`` in ``workdir``; returns the final report (also report.json).

    Args:
      cfg: a parsed :class:`~ssm_jax.training.config.Config` (a ConfigDict is parsed first).
      workdir: the run's directory; held under an exclusive lock for the whole run.
    """
    cfg = parse_config(cfg)
    maybe_initialize_distributed(cfg.distributed)
    dp = DataParallel(cfg.train.batch_size)  # the batch must split over the devices
    workdir = prepare_workdir(workdir)  # a file or a read-only path fails here, before any compute
    with WorkdirLock(workdir, jax.process_index()):  # a second run on this workdir fails here
        ds = get_dataset(cfg.data)
        left = len(ds.train) % cfg.train.batch_size
        if not cfg.train.drop_last and left % dp.num_devices:
            raise ValueError(f"train.drop_last=false: the last batch of {left} examples does not "
                             f"split over {dp.num_devices} devices; use train.drop_last=true or "
                             "a batch size that leaves a divisible remainder")
        model = build_model(cfg.model, ds.info)
        if model.pooling == "none" and ds.info.num_classes is not None and ds.train.labels.ndim < 2:
            raise ValueError("model.pooling='none' gives one output per position but dataset "
                             f"{ds.info.name!r} has one label per sequence; use 'mean' or 'last'")
        return fit([build_run(cfg, ds, model)], [workdir], dp=dp)[0]


__all__ = ["NonFiniteError", "TrainedRun", "build_model", "evaluate_model", "init_batch",
           "init_variables", "load_run", "loss_terms", "steps_per_epoch", "train_and_evaluate"]
