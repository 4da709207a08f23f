"""Training state: parameters, optimizer state, batch statistics, step and RNG in one pytree."""

from __future__ import annotations

from typing import Any, Callable

import flax.struct
import jax
import optax


def model_variables(tree) -> dict:
    """The model variables of a train state or its checkpointed tree: ``params``, and
    ``batch_stats`` when the model has BatchNorm statistics."""
    get = tree.get if isinstance(tree, dict) else lambda k: getattr(tree, k)
    v = {"params": get("params")}
    if get("batch_stats"):
        v["batch_stats"] = get("batch_stats")
    return v


class TrainState(flax.struct.PyTreeNode):
    """Everything a train step reads and writes; a pytree, so it can be checkpointed whole.

    Attributes:
      step: () int32, number of optimizer updates applied.
      params: model parameters.
      opt_state: optimizer state.
      batch_stats: BatchNorm running statistics ({} without BatchNorm).
      rng: PRNG key for dropout, folded with the step at each update.
      apply_fn, tx: the model's apply function and the optimizer (static, not saved).
    """

    step: jax.Array
    params: Any
    opt_state: Any
    batch_stats: Any
    rng: jax.Array
    apply_fn: Callable = flax.struct.field(pytree_node=False)
    tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

    @classmethod
    def create(cls, *, apply_fn, variables, tx, rng):
        params = variables["params"]
        return cls(step=jax.numpy.zeros((), jax.numpy.int32), params=params,
                   opt_state=tx.init(params), batch_stats=variables.get("batch_stats", {}),
                   rng=rng, apply_fn=apply_fn, tx=tx)

    @property
    def variables(self):
        return model_variables(self)

    def apply_gradients(self, grads, batch_stats, **extra_args):
        """``extra_args`` (e.g. ``value=loss``) go to optimizers that take them."""
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params, **extra_args)
        return self.replace(step=self.step + 1, params=optax.apply_updates(self.params, updates),
                            opt_state=opt_state, batch_stats=batch_stats)
