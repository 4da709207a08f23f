"""Per-layer measures of a model and the initialization scaling rule (paper 1, eq. (8)).

Both run the model in the mode training uses (``train=True``: BatchNorm normalizes with the
batch statistics, whose updates are discarded; dropout is switched off by intercepting every
``nn.Dropout``), or in evaluation mode with ``train=False`` (running statistics), with
``mutable=["intermediates"]``, and read each SSM layer's own input and kernel from the
intermediates. The output map the rule rescales is what each layer declares as its
``output_params`` (the layer protocol, :mod:`ssm_jax.layers.base`); names ending in ``_rev``
belong to the backward direction of a bidirectional layer.

Read-out: ``readout="last"`` measures every layer's output at the final time (the theorem),
``"mean"`` its time mean, ``"top_mean"`` the final time below the top layer and the time mean
at it (a mean-pooled model: :func:`~ssm_jax.bound.measure.layer_readouts`); see
:func:`~ssm_jax.bound.measure.direction_measures`.

Dropout: :func:`without_dropout` switches every ``nn.Dropout`` off in a train-mode forward
pass; the rule, the measures and the regularizer's statistics (the trainer's loss) all come
from such a pass.

Padding: with ``lengths``, the blocks zero the padded positions before each SSM layer, and
each sequence's read-out (at its own last valid step, or the mean over its valid steps) is
measured with per-sequence weights (:func:`~ssm_jax.bound.measure.readout_measure`).
"""

from __future__ import annotations

import contextlib
import functools

import jax
import jax.numpy as jnp

import flax.linen as nn

from ssm_jax.bound.collect import collect_layers, layer_sort_key
from ssm_jax.bound.measure import MEASURES, STACK_READOUTS, direction_measures, layer_readouts
from ssm_jax.kernels.checks import check_choice
from ssm_jax.layers import find_layers, update_params


def no_dropout(next_fun, args, kwargs, context):
    """Method interceptor (``nn.intercept_methods``): every ``nn.Dropout`` returns its input
    (train-mode forward with dropout off, without touching the model's definition)."""
    if isinstance(context.module, nn.Dropout) and context.method_name == "__call__":
        return args[0]
    return next_fun(*args, **kwargs)


@contextlib.contextmanager
def without_dropout():
    """Context in which every ``nn.Dropout`` of a forward pass is the identity (also while
    tracing under ``jit``, ``grad`` and ``vmap``): ``with without_dropout(): model.apply(...,
    train=True, ...)``."""
    with nn.intercept_methods(no_dropout):
        yield


def forward_intermediates(model, variables, x, lengths=None, *, train: bool = True):
    """The intermediates of one forward pass (train mode: batch statistics, no dropout, the
    updated ``batch_stats`` discarded)."""
    if not train:
        _, state = model.apply(variables, x, lengths, train=False, mutable=["intermediates"])
        return state["intermediates"]
    with without_dropout():
        _, state = model.apply(variables, x, lengths, train=True,
                               mutable=["intermediates", "batch_stats"])
    return state["intermediates"]


@functools.partial(jax.jit, static_argnames=("model", "measure", "readout", "train",
                                             "use_lengths"))
def _measures(model, variables, x, lengths, measure: str, readout: str = "last",
              train: bool = True, use_lengths: bool = False):
    """``{layer name: (tau, {direction suffix: tau to divide by})}`` from one forward pass (the
    model is a static, hashable argument: repeated calls compile once per model and shape)."""
    layers = collect_layers(forward_intermediates(model, variables, x, lengths, train=train))
    if not layers:
        raise ValueError(f"{type(model).__name__} sowed no SSM layer input and kernel")
    return {layer.name: direction_measures(layer.kernel, layer.input, K_rev=layer.kernel_rev,
                                           readout=r, measure=measure,
                                           lengths=lengths if use_lengths else None)
            for layer, r in zip(layers, layer_readouts(readout, len(layers)))}


def _clean(variables):
    """The variables without an old "intermediates" collection (sow would append to it)."""
    return type(variables)({k: v for k, v in variables.items() if k != "intermediates"})


def layer_measures(model, variables, x, lengths=None, *, measure: str = "paper",
                   readout: str = "last", train: bool = True):
    """tau of every SSM layer, each from the statistics of that layer's own input on ``x``.

    Args:
      model: a ``SequenceModel`` (or any module whose SSM layers sow ``input`` and ``kernel``).
      variables: its variables (``params``, and ``batch_stats`` with BatchNorm).
      x: (batch, L) int tokens or (batch, L, C) float, the model input.
      lengths: None or (batch,) int valid lengths (see the module docstring on padding).
      measure: one of :data:`MEASURES`.
      readout: one of :data:`~ssm_jax.bound.measure.STACK_READOUTS` ("last": final time;
        "mean": time mean; "top_mean": final time below the top layer, time mean at it).
      train: forward in the mode training uses (batch statistics, dropout off); False:
        evaluation mode (running statistics).

    Returns:
      list of (H,) float arrays (H_out for MIMO layers), in block order.
    """
    check_choice("measure", measure, MEASURES)
    check_choice("readout", readout, STACK_READOUTS)
    taus = _measures(model, _clean(variables), x, lengths, measure, readout, train,
                     lengths is not None)
    return [taus[name][0] for name in sorted(taus, key=layer_sort_key)]


def _scale_outputs(layer_params, cls, name, taus):
    """Divide every output-map row ``o`` of one layer by ``sqrt(tau[o])`` (tau > 0 only), with
    the tau of the parameter's direction (``taus["_rev"]`` for names ending in ``_rev``)."""
    keys = [k for k in layer_params if k in cls.output_params]
    if not keys:
        raise ValueError(f"layer {name!r} ({cls.__name__}) has none of its output parameters "
                         f"{sorted(cls.output_params)}; it has {tuple(layer_params)}")
    out = dict(layer_params)
    for k in keys:
        tau = taus["_rev"] if k.endswith("_rev") and "_rev" in taus else taus[""]
        positive = tau > 0
        factor = jnp.where(positive, jax.lax.rsqrt(jnp.where(positive, tau, 1)), 1)
        C = layer_params[k]
        if C.shape[0] != tau.shape[0]:
            raise ValueError(f"layer {name!r}: {k} has shape {C.shape} but tau has shape {tau.shape}")
        out[k] = C * factor.reshape((-1,) + (1,) * (C.ndim - 1)).astype(C.dtype)
    return type(layer_params)(out)


def rescale_init(model, variables, x, lengths=None, *, measure: str = "paper",
                 readout: str = "last", train: bool = True):
    """Initialization scaling rule: divide each channel's C by ``sqrt(tau)``, layer by layer.

    From the first layer on: one forward pass (with the layers before already rescaled) gives
    this layer's input statistics and kernel, and the rows of its output map (the layer's
    ``output_params``: S4D ``C_re, C_im``; S5 ``C``; both directions of bidirectional layers)
    are divided by ``sqrt(tau)`` of their output channel. The kernel is linear in C and the
    layer's input does not depend on its own C, so afterwards ``layer_measures(model,
    variables, x, lengths, measure=..., readout=..., train=...)`` is 1 for every layer and channel (channels with tau = 0 are left
    unchanged).

    Args:
      model: a ``SequenceModel`` (or any module whose SSM layers sow ``input`` and ``kernel``).
      variables: its variables (``params``, and ``batch_stats`` with BatchNorm, returned
        unchanged: the train-mode statistics updates are discarded).
      x: (batch, L) int tokens or (batch, L, C) float, a batch of training inputs.
      lengths: None or (batch,) int valid lengths.
      measure: one of :data:`MEASURES`.
      readout: one of :data:`~ssm_jax.bound.measure.STACK_READOUTS` (each layer rescaled for
        its own read-out, :func:`~ssm_jax.bound.measure.layer_readouts`). Bidirectional layers:
        with "mean" both directions' output maps are divided by the layer's tau; with "last"
        each direction's by its own (:func:`~ssm_jax.bound.measure.direction_measures`).
      train: measure in the mode training uses (default; BatchNorm with batch statistics,
        dropout off); False: evaluation mode.

    Returns:
      the variables with rescaled output maps (same structure; no "intermediates").
    """
    check_choice("measure", measure, MEASURES)
    check_choice("readout", readout, STACK_READOUTS)
    layer_types = find_layers(model, x, lengths)
    variables = _clean(variables)
    args = (measure, readout, train, lengths is not None)
    taus = _measures(model, variables, x, lengths, *args)
    for i, name in enumerate(sorted(taus, key=layer_sort_key)):
        if "[" in name:
            raise ValueError(f"layer {name!r} is applied more than once; cannot rescale it alone")
        if i:
            taus = _measures(model, variables, x, lengths, *args)  # inputs of this layer changed
        path = tuple(name.split("/"))
        cls = layer_types[path]
        variables = update_params(variables, ("params",) + path,
                                  lambda p: _scale_outputs(p, cls, name, taus[name][1]))
    return variables
