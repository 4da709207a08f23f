"""Per-layer measures of a model and the initialization scaling rule (paper 1, eq. (8)).

Both run the model in evaluation mode (``train=False``: BatchNorm uses its running statistics,
dropout is off), with ``mutable=["intermediates"]``, and read each SSM layer's own input and
kernel from the intermediates. The output map the rule rescales is what each layer declares as
its ``output_params`` (the layer protocol, :mod:`ssm_jax.layers.base`).

Padding: with ``lengths``, the blocks zero the padded positions before each SSM layer, and the
statistics are taken over the whole batch at every time step, zeros included. The measure is
then the one of the final-time output ``y(L-1)`` of the padded batch (a sequence of length
``n < L`` contributes a zero tail). For the paper's setting use full-length batches.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ssm_jax.bound.collect import collect_layers, layer_sort_key
from ssm_jax.bound.measure import MEASURES, batch_measure
from ssm_jax.kernels._checks import check_choice
from ssm_jax.layers import find_layers, update_params


@functools.partial(jax.jit, static_argnames=("model", "measure"))
def _measures(model, variables, x, lengths, measure: str):
    """``{layer name: tau}`` from one forward pass (the model is a static, hashable argument:
    repeated calls compile once per model and input shape)."""
    _, state = model.apply(variables, x, lengths, train=False, mutable=["intermediates"])
    layers = collect_layers(state["intermediates"])
    if not layers:
        raise ValueError(f"{type(model).__name__} sowed no SSM layer input and kernel")
    return {layer.name: batch_measure(layer.final_kernel, layer.input, measure=measure)
            for layer in layers}


def _clean(variables):
    """The variables without an old "intermediates" collection (sow would append to it)."""
    return type(variables)({k: v for k, v in variables.items() if k != "intermediates"})


def layer_measures(model, variables, x, lengths=None, *, measure: str = "paper"):
    """tau of every SSM layer, each from the statistics of that layer's own input on ``x``.

    Args:
      model: a ``SequenceModel`` (or any module whose SSM layers sow ``input`` and ``kernel``).
      variables: its variables (``params``, and ``batch_stats`` with BatchNorm).
      x: (batch, L) int tokens or (batch, L, C) float, the model input.
      lengths: None or (batch,) int valid lengths (see the module docstring on padding).
      measure: one of :data:`MEASURES`.

    Returns:
      list of (H,) float arrays (H_out for MIMO layers), in block order.
    """
    check_choice("measure", measure, MEASURES)
    taus = _measures(model, _clean(variables), x, lengths, measure)
    return [taus[name] for name in sorted(taus, key=layer_sort_key)]


def _scale_outputs(layer_params, cls, name, tau):
    """Divide every output-map row ``o`` of one layer by ``sqrt(tau[o])`` (tau > 0 only)."""
    keys = [k for k in layer_params if k in cls.output_params]
    if not keys:
        raise ValueError(f"layer {name!r} ({cls.__name__}) has none of its output parameters "
                         f"{sorted(cls.output_params)}; it has {tuple(layer_params)}")
    positive = tau > 0
    factor = jnp.where(positive, jax.lax.rsqrt(jnp.where(positive, tau, 1)), 1)
    out = dict(layer_params)
    for k in keys:
        C = layer_params[k]
        if C.shape[0] != tau.shape[0]:
            raise ValueError(f"layer {name!r}: {k} has shape {C.shape} but tau has shape {tau.shape}")
        out[k] = C * factor.reshape((-1,) + (1,) * (C.ndim - 1)).astype(C.dtype)
    return type(layer_params)(out)


def rescale_init(model, variables, x, lengths=None, *, measure: str = "paper"):
    """Initialization scaling rule: divide each channel's C by ``sqrt(tau)``, layer by layer.

    From the first layer on: one forward pass (with the layers before already rescaled) gives
    this layer's input statistics and kernel, and the rows of its output map (the layer's
    ``output_params``: S4D ``C_re, C_im``; S5 ``C``; both directions of bidirectional layers)
    are divided by ``sqrt(tau)`` of their output channel. The kernel is linear in C and the
    layer's input does not depend on its own C, so afterwards ``layer_measures(model,
    variables, x, lengths)`` is 1 for every layer and channel (channels with tau = 0 are left
    unchanged).

    Args:
      model: a ``SequenceModel`` (or any module whose SSM layers sow ``input`` and ``kernel``).
      variables: its variables (``params``, and ``batch_stats`` with BatchNorm; evaluation
        mode is used).
      x: (batch, L) int tokens or (batch, L, C) float, a batch of training inputs.
      lengths: None or (batch,) int valid lengths.
      measure: one of :data:`MEASURES`.

    Returns:
      the variables with rescaled output maps (same structure; no "intermediates").
    """
    check_choice("measure", measure, MEASURES)
    layer_types = find_layers(model, x, lengths)
    variables = _clean(variables)
    taus = _measures(model, variables, x, lengths, measure)
    for i, name in enumerate(sorted(taus, key=layer_sort_key)):
        if "[" in name:
            raise ValueError(f"layer {name!r} is applied more than once; cannot rescale it alone")
        if i:
            taus = _measures(model, variables, x, lengths, measure)  # inputs of this layer changed
        path = tuple(name.split("/"))
        cls = layer_types[path]
        variables = update_params(variables, ("params",) + path,
                                  lambda p: _scale_outputs(p, cls, name, taus[name]))
    return variables
