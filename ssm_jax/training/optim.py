"""Optimizer: parameter groups from the layer protocol, optax schedules, gradient clipping."""

from __future__ import annotations

from typing import NamedTuple

import flax.traverse_util as traverse_util
import jax
import jax.numpy as jnp
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


class TorchPlateauState(NamedTuple):
    scale: jax.Array  # () learning-rate factor applied to the updates
    best: jax.Array  # () best epoch-mean loss so far
    num_bad: jax.Array  # () epochs without a relative improvement of rtol
    count: jax.Array  # () steps seen in the current epoch
    total: jax.Array  # () sum of their losses / accumulation_size (no float32 overflow)


def torch_reduce_on_plateau(factor: float, patience: int, rtol: float,
                            accumulation_size: int) -> optax.GradientTransformationExtraArgs:
    """torch ``ReduceLROnPlateau(mode="min", threshold_mode="rel", cooldown=0)`` stepped once per
    epoch of ``accumulation_size`` steps on the epoch-mean ``value``: an epoch improves if its
    mean is below ``best * (1 - rtol)``; the scale is multiplied by ``factor`` when the bad
    epochs *exceed* ``patience`` (the 6th bad epoch for patience 5), and the new scale applies
    from the next epoch's first step. (``optax.contrib.reduce_on_plateau`` cuts at the
    ``patience``-th bad epoch and applies the cut to the epoch's last step already.)"""

    def init(params):
        del params
        f = jnp.float32
        return TorchPlateauState(jnp.ones((), f), jnp.asarray(jnp.inf, f), jnp.zeros((), jnp.int32),
                                 jnp.zeros((), jnp.int32), jnp.zeros((), f))

    def update(updates, state, params=None, *, value, **extra):
        del params, extra
        updates = jax.tree.map(lambda g: state.scale * g, updates)
        count = state.count + 1
        total = state.total + jnp.asarray(value, jnp.float32) / accumulation_size
        mean = total  # read at the epoch's end, when count == accumulation_size
        improved = mean < state.best * (1.0 - rtol)
        num_bad = jnp.where(improved, 0, state.num_bad + 1)
        cut = num_bad > patience
        at_end = count == accumulation_size
        new = TorchPlateauState(
            scale=jnp.where(at_end & cut, state.scale * factor, state.scale),
            best=jnp.where(at_end & improved, mean, state.best),
            num_bad=jnp.where(at_end, jnp.where(cut, 0, num_bad), state.num_bad),
            count=jnp.where(at_end, 0, count), total=jnp.where(at_end, 0.0, total))
        return updates, new

    return optax.GradientTransformationExtraArgs(init, update)


def plateau_transform(optim_cfg, steps_per_epoch: int):
    """The learning-rate cut of the ``adam_l2`` recipe (``optim.plateau_semantics``: optax's or
    torch's) on the mean loss of every ``steps_per_epoch`` steps."""
    size = max(1, steps_per_epoch)
    if optim_cfg.plateau_semantics == "torch":
        return torch_reduce_on_plateau(optim_cfg.plateau_factor, optim_cfg.plateau_patience,
                                       optim_cfg.plateau_rtol, size)
    return optax.contrib.reduce_on_plateau(factor=optim_cfg.plateau_factor,
                                           patience=optim_cfg.plateau_patience,
                                           rtol=optim_cfg.plateau_rtol, accumulation_size=size)


def paper3_optimizer(optim_cfg, steps_per_epoch: int) -> optax.GradientTransformation:
    """The selective-SSM paper's recipe (torch ``Adam(weight_decay)`` + ``clip_grad_norm_`` +
    ``ReduceLROnPlateau`` stepped once per epoch on the epoch-mean loss), from optax pieces:
    clip the global norm (``grad_clip``, 0 = off), add ``weight_decay * params`` to the
    gradient (coupled L2, as torch's Adam), Adam at constant ``lr``, then scale by the plateau
    cut (:func:`plateau_transform`) on the mean loss over ``steps_per_epoch`` steps.

    ``lr`` and ``weight_decay`` are injected hyperparameters (``opt_state.hyperparams``), so
    the members of a vectorized group may each have their own (:func:`set_hyperparams`)."""
    clip = [optax.clip_by_global_norm(optim_cfg.grad_clip)] if optim_cfg.grad_clip > 0 else []

    def chain(learning_rate, weight_decay):
        return optax.chain(*clip, optax.add_decayed_weights(weight_decay),
                           optax.adam(learning_rate, b1=optim_cfg.b1, b2=optim_cfg.b2),
                           plateau_transform(optim_cfg, steps_per_epoch))

    return optax.inject_hyperparams(chain)(learning_rate=optim_cfg.lr,
                                           weight_decay=optim_cfg.weight_decay)


def set_hyperparams(opt_state, optim_cfg, member_cfgs):
    """The stacked optimizer state of a vectorized group with each member's ``lr`` and
    ``weight_decay`` (``adam_l2``: injected hyperparameters); other recipes share them
    (unchanged state)."""
    if optim_cfg.recipe != "adam_l2":
        return opt_state
    hyper = dict(opt_state.hyperparams)
    hyper["learning_rate"] = jnp.asarray([c.lr for c in member_cfgs], jnp.float32)
    hyper["weight_decay"] = jnp.asarray([c.weight_decay for c in member_cfgs], jnp.float32)
    return opt_state._replace(hyperparams=hyper)


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
    if optim_cfg.recipe == "adam_l2":
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


def learning_rates(optim_cfg, total_steps: int, opt_state, step: int) -> dict:
    """The learning rates of the update that produced ``step`` (for the logs): ``lr`` (and
    ``ssm_lr`` of the SSM core under the ``groups`` recipe, from their schedules); under
    ``adam_l2`` the injected ``lr`` times the plateau cut so far."""
    if optim_cfg.recipe == "adam_l2":
        lr = float(jax.device_get(opt_state.hyperparams["learning_rate"]))
        return {"lr": lr * float(jax.device_get(opt_state.inner_state[-1].scale))}
    at = max(step - 1, 0)
    sched = lambda lr: float(make_schedule(lr, total_steps, optim_cfg.warmup_steps,
                                           optim_cfg.schedule)(at))
    return {"lr": sched(optim_cfg.lr), "ssm_lr": sched(optim_cfg.ssm_lr)}
