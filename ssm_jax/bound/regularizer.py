"""The regularizer (paper 1, eq. (9)): a reduction of every layer's tau inside the jitted loss.

It reuses the kernels and inputs the forward pass sowed (apply the model with
``mutable=["intermediates"]``), so there is no second forward pass::

    logits, state = model.apply(variables, x, lengths, train=True,
                                mutable=["intermediates", "batch_stats"], rngs=...)
    loss = task_loss(logits, y) + reg_lambda * regularizer(state["intermediates"])

Statistics come from the current batch; the gradient flows through the kernels (and through
the statistics only with ``stop_gradient_stats=False``). The trainer hands the term the
intermediates of a forward pass without dropout (as the init rule (8) measures), see
:func:`ssm_jax.bound.config.make_regularizer`.

Normalization of lambda: with ``channel_reduce="mean"`` (the default of ``bound``) the loss
term is ``lambda * sum_layers mean_h tau[l][h] = (lambda / H) * sum_layers sum_h tau[l][h]``;
with ``"sum"`` it is ``lambda * sum_layers sum_h tau[l][h]`` (the sum over channels of (9) as
reconstructed in ``docs/theory.md#paper-1-the-regularizer-9``), H times larger at the same lambda.
"""

from __future__ import annotations

import jax.numpy as jnp

from ssm_jax.bound.collect import collect_layers
from ssm_jax.bound.measure import MEASURES, STACK_READOUTS, direction_measures, layer_readouts
from ssm_jax.kernels.checks import check_choice

REDUCTIONS = {"mean": jnp.mean, "sum": jnp.sum, "max": jnp.max}


def layer_taus(intermediates, *, measure: str = "paper", stop_gradient_stats: bool = True,
               readout: str = "last", lengths=None):
    """tau of every SSM layer found in an intermediates tree, in block order.

    Args:
      intermediates: intermediates tree (see :func:`collect_layers`).
      measure: one of :data:`MEASURES`.
      stop_gradient_stats: treat each layer's input statistics as constants.
      readout: one of :data:`~ssm_jax.bound.measure.STACK_READOUTS`: the final-time output or
        the time mean at every layer, or "top_mean" (final time below the top layer, time mean
        at it: :func:`~ssm_jax.bound.measure.layer_readouts`).
      lengths: None or (batch,) int valid lengths of a padded batch.

    Returns:
      list of (H,) arrays (H_out for MIMO layers), one per layer; bidirectional layers: both
      directions with all their lags (:func:`~ssm_jax.bound.measure.direction_measures`).
    """
    check_choice("measure", measure, MEASURES)
    check_choice("readout", readout, STACK_READOUTS)
    layers = collect_layers(intermediates)
    if not layers:
        raise ValueError("no SSM layer in the intermediates (no node with 'input' and 'kernel'); "
                         "apply the model with mutable=['intermediates']")
    readouts = layer_readouts(readout, len(layers))
    return [direction_measures(layer.kernel, layer.input, K_rev=layer.kernel_rev, readout=r,
                               measure=measure, lengths=lengths,
                               stop_gradient_stats=stop_gradient_stats)[0]
            for layer, r in zip(layers, readouts)]


def regularizer(intermediates, *, measure: str = "paper", channel_reduce: str = "mean",
                layer_reduce: str = "sum", stop_gradient_stats: bool = True,
                readout: str = "last", lengths=None):
    """``layer_reduce_l channel_reduce_h tau[l][h]`` on the current batch, for the loss.

    Args:
      intermediates: intermediates tree of the forward pass (see :func:`collect_layers`):
        every layer's ``input`` (batch, L, H_in) and ``kernel`` (H, L) or (H_out, H_in, L).
      measure: one of :data:`MEASURES` ("paper" or "covariance").
      channel_reduce: reduction over a layer's channels, one of :data:`REDUCTIONS`.
      layer_reduce: reduction over layers, one of :data:`REDUCTIONS`.
      stop_gradient_stats: ``stop_gradient`` on the statistics (the layer inputs); the
        gradient then flows through the kernels only.
      readout: one of :data:`~ssm_jax.bound.measure.STACK_READOUTS` (see :func:`layer_taus`).
      lengths: None or (batch,) int valid lengths of a padded batch.

    Returns:
      () float scalar.
    """
    check_choice("measure", measure, MEASURES)
    check_choice("channel_reduce", channel_reduce, tuple(REDUCTIONS))
    check_choice("layer_reduce", layer_reduce, tuple(REDUCTIONS))
    taus = layer_taus(intermediates, measure=measure, stop_gradient_stats=stop_gradient_stats,
                      readout=readout, lengths=lengths)
    per_layer = jnp.stack([REDUCTIONS[channel_reduce](tau) for tau in taus])
    return REDUCTIONS[layer_reduce](per_layer)
