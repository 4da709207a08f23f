"""Optimizer: parameter groups from the layer protocol, optax schedules, gradient clipping."""

from __future__ import annotations

import flax.traverse_util as traverse_util
import optax
import optax.contrib

GROUPS = ("ssm", "regular")
SCHEDULES = ("cosine", "constant")


def param_label(path: tuple, layers) -> str:
    """Group of one parameter from its path, e.g. ``("block_0", "ssm", "Lambda_re")``.

    Args:
      path: the parameter's path in ``params``.
      layers: ``{layer path: layer class}`` of the model's SSM layers
        (:func:`ssm_jax.layers.find_layers`).

    Returns:
      "ssm" for a parameter that its layer declares as SSM core (``core_params``: eigenvalues,
      input matrix, step size); "regular" for everything else (output map, D, encoder, norms,
      dense layers, head).
    """
    cls = layers.get(tuple(path[:-1]))
    return "ssm" if cls is not None and path[-1] in cls.core_params else "regular"


def param_labels(params, layers):
    """Pytree of group labels with the structure of ``params`` (see :func:`param_label`)."""
    flat = traverse_util.flatten_dict(params)
    return traverse_util.unflatten_dict({path: param_label(path, layers) for path in flat})


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


def paper3_optimizer(optim_cfg, steps_per_epoch: int) -> optax.GradientTransformation:
    """The selective-SSM paper's recipe (torch ``Adam(weight_decay)`` + ``clip_grad_norm_`` +
    ``ReduceLROnPlateau`` stepped once per epoch on the epoch-mean loss), from optax pieces:
    clip the global norm (``grad_clip``, 0 = off), add ``weight_decay * params`` to the
    gradient (coupled L2, as torch's Adam), Adam at constant ``lr``, then scale by
    ``reduce_on_plateau`` whose value is the mean loss over ``steps_per_epoch`` steps."""
    parts = []
    if optim_cfg.grad_clip > 0:
        parts.append(optax.clip_by_global_norm(optim_cfg.grad_clip))
    if optim_cfg.weight_decay > 0:
        parts.append(optax.add_decayed_weights(optim_cfg.weight_decay))
    parts += [optax.adam(optim_cfg.lr, b1=optim_cfg.b1, b2=optim_cfg.b2),
              optax.contrib.reduce_on_plateau(
                  factor=optim_cfg.plateau_factor, patience=optim_cfg.plateau_patience,
                  rtol=optim_cfg.plateau_rtol, accumulation_size=max(1, steps_per_epoch))]
    return optax.chain(*parts)


def make_optimizer(optim_cfg, total_steps: int, layers,
                   steps_per_epoch: int = 1) -> optax.GradientTransformation:
    """Adam (no weight decay, own learning rate) for the SSM core, AdamW for the rest.

    Args:
      optim_cfg: the ``optim`` section: ``lr``, ``ssm_lr``, ``weight_decay``,
        ``warmup_steps``, ``schedule`` ("cosine" | "constant"), ``grad_clip`` (global norm; 0
        disables), ``b1``, ``b2``.
      total_steps: length of the schedule.
      layers: ``{layer path: layer class}`` (:func:`ssm_jax.layers.find_layers`), which
        decides the SSM core group.
    """
    if getattr(optim_cfg, "recipe", "groups") == "adam_l2":
        return paper3_optimizer(optim_cfg, steps_per_epoch)
    sched = lambda lr: make_schedule(lr, total_steps, optim_cfg.warmup_steps, optim_cfg.schedule)
    betas = dict(b1=optim_cfg.b1, b2=optim_cfg.b2)
    tx = optax.multi_transform(
        {"ssm": optax.adam(sched(optim_cfg.ssm_lr), **betas),
         "regular": optax.adamw(sched(optim_cfg.lr), weight_decay=optim_cfg.weight_decay, **betas)},
        lambda params: param_labels(params, layers),
    )
    if optim_cfg.grad_clip > 0:
        tx = optax.chain(optax.clip_by_global_norm(optim_cfg.grad_clip), tx)
    return tx
