"""Per-layer measures of a SequenceModel and the initialization scaling rule (paper 1, eq. (8)).

Both run the model in evaluation mode (``train=False``: BatchNorm uses its running statistics,
dropout is off), with ``mutable=["intermediates"]``, and read each SSM layer's own input and
kernel from the intermediates.

Padding: with ``lengths``, the blocks zero the padded positions before each SSM layer, and the
statistics are taken over the whole batch at every time step, zeros included. The measure is
then the one of the final-time output ``y(L-1)`` of the padded batch (a sequence of length
``n < L`` contributes a zero tail). For the paper's setting use full-length batches.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping

import jax
import jax.numpy as jnp

from ssm_jax.bound.collect import collect_layers, layer_sort_key
from ssm_jax.bound.measure import MEASURES, batch_measure
from ssm_jax.kernels._checks import check_choice

# Parameters that hold a layer's output matrix C, with the output channel on axis 0; the
# kernel is linear in them (S4D: C_re, C_im (H, n); S5: C (H, P', 2); "_rev": backward).
OUTPUT_PARAMS = ("C", "C_re", "C_im", "C_rev", "C_re_rev", "C_im_rev")


_CACHE = {}  # (id(model), measure) -> (weakref to model, jitted function)


def _measure_fn(model, measure: str):
    """Jitted ``(variables, x, lengths) -> {layer name: tau}`` from one forward pass.

    Cached per model object (flax modules are not hashable), so repeated calls, e.g. logging the
    measures every epoch, compile once per input shape.
    """
    check_choice("measure", measure, MEASURES)
    key = (id(model), measure)
    ref, run = _CACHE.get(key, (None, None))
    if ref is not None and ref() is model:
        return run
    ref = weakref.ref(model, lambda _: _CACHE.pop(key, None))  # the cache must not keep model alive

    @jax.jit
    def run(variables, x, lengths):
        _, state = ref().apply(variables, x, lengths, train=False, mutable=["intermediates"])
        layers = collect_layers(state["intermediates"])
        if not layers:
            raise ValueError(f"{type(ref()).__name__} sowed no SSM layer input and kernel")
        return {layer.name: batch_measure(layer.final_kernel, layer.input, measure=measure)
                for layer in layers}

    _CACHE[key] = (ref, run)
    return run


def _clean(variables):
    """The variables without an old "intermediates" collection (sow would append to it)."""
    return type(variables)({k: v for k, v in variables.items() if k != "intermediates"})


def layer_measures(model, variables, x, lengths=None, *, measure: str = "paper"):
    """tau of every SSM layer, each from the statistics of that layer's own input on ``x``.

    Args:
      model: a ``SequenceModel`` (or any module whose SSM layers sow ``input`` and ``kernel``).
      variables: its variables (``params``, and ``batch_stats`` with BatchNorm).
      x: (B, L) int tokens or (B, L, C) float, the model input.
      lengths: None or (B,) int valid lengths (see the module docstring on padding).
      measure: one of :data:`MEASURES`.

    Returns:
      list of (H,) float arrays (H_out for MIMO layers), in block order.
    """
    taus = _measure_fn(model, measure)(_clean(variables), x, lengths)
    return [taus[name] for name in sorted(taus, key=layer_sort_key)]


def _replace(tree, path, fn):
    """Copy of nested mapping ``tree`` with ``fn`` applied to the node at ``path``."""
    if not path:
        return fn(tree)
    if not isinstance(tree, Mapping) or path[0] not in tree:
        raise ValueError(f"no parameters at {'/'.join(path)!r}")
    return type(tree)({**tree, path[0]: _replace(tree[path[0]], path[1:], fn)})


def _scale_outputs(layer_params, name, tau):
    """Divide every output-matrix row ``o`` of one layer by ``sqrt(tau[o])`` (tau > 0 only)."""
    keys = [k for k in layer_params if k in OUTPUT_PARAMS]
    if not keys:
        raise ValueError(f"layer {name!r} has none of the output parameters {OUTPUT_PARAMS}; "
                         f"it has {tuple(layer_params)}")
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
    this layer's input statistics and kernel, and the rows of its output matrices (S4D:
    ``C_re, C_im``; S5: ``C``; bidirectional layers: both directions) are divided by
    ``sqrt(tau)`` of their output channel. The kernel is linear in C and the layer's input
    does not depend on its own C, so afterwards ``layer_measures(model, variables, x, lengths)``
    is 1 for every layer and channel (channels with tau = 0 are left unchanged).

    Args:
      model: a ``SequenceModel`` (or any module whose SSM layers sow ``input`` and ``kernel``).
      variables: its variables (``params``, and ``batch_stats`` with BatchNorm; evaluation
        mode is used).
      x: (B, L) int tokens or (B, L, C) float, a batch of training inputs.
      lengths: None or (B,) int valid lengths.
      measure: one of :data:`MEASURES`.

    Returns:
      the variables with rescaled C parameters (same structure; no "intermediates").
    """
    run = _measure_fn(model, measure)
    variables = _clean(variables)
    taus = run(variables, x, lengths)
    for i, name in enumerate(sorted(taus, key=layer_sort_key)):
        if "[" in name:
            raise ValueError(f"layer {name!r} is applied more than once; cannot rescale it alone")
        if i:
            taus = run(variables, x, lengths)  # inputs of this layer changed
        path = ("params",) + tuple(name.split("/"))
        variables = _replace(variables, path, lambda p: _scale_outputs(p, name, taus[name]))
    return variables
