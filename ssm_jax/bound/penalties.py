"""Data-independent penalties to compare the regularizer (9) against at matched strength.

All are reductions over SSM layers (``layer_reduce``) of a reduction over output channels
(``channel_reduce``), like :func:`~ssm_jax.bound.regularizer.regularizer`:

* ``kernel_l2``: ``sum_l K[h, l]^2`` (both directions of a bidirectional layer added);
* ``kernel_l1``: ``sum_l |K[h, l]|``;
* ``c_l2``: ``sum_n |C[h, n]|^2`` of the layer's output map (its ``output_params``, rows
  ``h``): weight decay on C as a loss term.

The first two read the sown kernels; ``c_l2`` reads the parameters.
"""

from __future__ import annotations

import jax.numpy as jnp

from ssm_jax.bound.collect import collect_layers
from ssm_jax.bound.regularizer import REDUCTIONS
from ssm_jax.kernels.checks import check_choice

PENALTIES = ("kernel_l2", "kernel_l1", "c_l2")


def _kernel_rows(K):
    """(H, L) or (H_out, H_in, L) -> (H_out, ...) rows per output channel."""
    return K.reshape(K.shape[0], -1)


def kernel_penalty(intermediates, kind: str = "kernel_l2", *, channel_reduce: str = "mean",
                   layer_reduce: str = "sum"):
    """``kernel_l2`` or ``kernel_l1`` of every sown kernel (see the module docstring)."""
    check_choice("penalty", kind, PENALTIES[:2])
    norm = (lambda K: jnp.sum(_kernel_rows(K) ** 2, -1)) if kind == "kernel_l2" else \
        (lambda K: jnp.sum(jnp.abs(_kernel_rows(K)), -1))
    per_layer = []
    for layer in collect_layers(intermediates):
        value = norm(layer.kernel)
        if layer.kernel_rev is not None:
            value = value + norm(layer.kernel_rev)
        per_layer.append(REDUCTIONS[channel_reduce](value))
    if not per_layer:
        raise ValueError("no SSM layer in the intermediates; apply the model with "
                         "mutable=['intermediates']")
    return REDUCTIONS[layer_reduce](jnp.stack(per_layer))


def c_penalty(params, layer_paths, *, channel_reduce: str = "mean", layer_reduce: str = "sum"):
    """``c_l2`` of the output maps.

    Args:
      params: the model's parameters.
      layer_paths: ``{layer path: layer class}`` (:func:`ssm_jax.layers.find_layers`).
    """
    per_layer = []
    for path, cls in sorted(layer_paths.items()):
        node = params
        for key in path:
            node = node[key]
        value = sum(jnp.sum(node[k].reshape(node[k].shape[0], -1) ** 2, -1)
                    for k in sorted(node) if k in cls.output_params)
        per_layer.append(REDUCTIONS[channel_reduce](value))
    return REDUCTIONS[layer_reduce](jnp.stack(per_layer))


def make_penalty(kind: str, layer_paths=None, *, channel_reduce: str = "mean",
                 layer_reduce: str = "sum"):
    """A loss term ``term(intermediates, batch=None, params=None)`` for ``kind``; ``c_l2``
    needs ``layer_paths`` and sets ``term.uses_params`` (the train step passes the params)."""
    check_choice("penalty", kind, PENALTIES)
    opts = dict(channel_reduce=channel_reduce, layer_reduce=layer_reduce)
    if kind == "c_l2":
        if layer_paths is None:
            raise ValueError("penalty 'c_l2' needs the model's layer paths (find_layers)")

        def term(intermediates, batch=None, params=None):
            return c_penalty(params, layer_paths, **opts)

        term.uses_params = True
        return term

    def term(intermediates, batch=None, params=None):
        return kernel_penalty(intermediates, kind, **opts)

    return term
