"""Optimizer: parameter groups chosen by parameter path, optax schedules, gradient clipping."""

from __future__ import annotations

import flax.traverse_util as traverse_util
import optax

from ssm_jax.layers import SSM_CORE_PARAMS

GROUPS = ("ssm", "regular")
SCHEDULES = ("cosine", "constant")


def param_label(path: tuple) -> str:
    """Group of one parameter from its path, e.g. ``("block_0", "ssm", "Lambda_re")``.

    "ssm": the SSM core (eigenvalues, input matrix, step size) of any module named ``ssm``;
    "regular": everything else (C, D, encoder, norms, dense layers, head).
    """
    inside_ssm = "ssm" in path[:-1]
    return "ssm" if inside_ssm and path[-1] in SSM_CORE_PARAMS else "regular"


def param_labels(params):
    """Pytree of group labels with the structure of ``params``."""
    flat = traverse_util.flatten_dict(params)
    return traverse_util.unflatten_dict({path: param_label(path) for path in flat})


def make_schedule(lr: float, total_steps: int, warmup_steps: int, schedule: str):
    if schedule == "constant":
        if warmup_steps:
            return optax.join_schedules(
                [optax.linear_schedule(0.0, lr, warmup_steps), optax.constant_schedule(lr)],
                [warmup_steps])
        return optax.constant_schedule(lr)
    if not warmup_steps:
        return optax.cosine_decay_schedule(lr, max(total_steps, 1))
    # A run shorter than its warmup is all warmup (optax needs decay_steps > warmup_steps).
    return optax.warmup_cosine_decay_schedule(0.0, lr, warmup_steps, max(total_steps, warmup_steps + 1))


def make_optimizer(optim_cfg, total_steps: int) -> optax.GradientTransformation:
    """Adam (no weight decay, own learning rate) for the SSM core, AdamW for the rest.

    Config keys: ``lr``, ``ssm_lr``, ``weight_decay``, ``warmup_steps``, ``schedule``
    ("cosine" | "constant"), ``grad_clip`` (global norm; 0 disables), ``b1``, ``b2``.
    """
    sched = lambda lr: make_schedule(lr, total_steps, optim_cfg.warmup_steps, optim_cfg.schedule)
    betas = dict(b1=optim_cfg.b1, b2=optim_cfg.b2)
    tx = optax.multi_transform(
        {"ssm": optax.adam(sched(optim_cfg.ssm_lr), **betas),
         "regular": optax.adamw(sched(optim_cfg.lr), weight_decay=optim_cfg.weight_decay, **betas)},
        param_labels,
    )
    if optim_cfg.grad_clip > 0:
        tx = optax.chain(optax.clip_by_global_norm(optim_cfg.grad_clip), tx)
    return tx
