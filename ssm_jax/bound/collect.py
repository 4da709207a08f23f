"""Read every SSM layer's kernel and input from the ``intermediates`` a forward pass sowed.

Any layer that sows ``input`` (batch, L, H_in) and ``kernel`` ((H, L) or (H_out, H_in, L)), and
optionally ``kernel_rev``, is found, whatever its type (S4D, S5, later layers).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax

from ssm_jax.bound.measure import final_time_kernel


class LayerIO(NamedTuple):
    """Kernel and input of one SSM layer application.

    Attributes:
      name: module path joined by "/", e.g. ``"block_0/ssm"`` (with ``"[j]"`` appended when a
        module was applied more than once).
      kernel: (H, L) or (H_out, H_in, L) float, forward kernel.
      input: (batch, L, H_in) float, the layer's input as sown (padded positions already zeroed
        by the block).
      kernel_rev: None, or the backward kernel of a bidirectional layer (shape of ``kernel``).
    """

    name: str
    kernel: jax.Array
    input: jax.Array
    kernel_rev: Any = None

    @property
    def path(self) -> tuple[str, ...]:
        """Module path, e.g. ``("block_0", "ssm")``: the same path in ``variables["params"]``."""
        return tuple(self.name.split("[")[0].split("/"))

    @property
    def final_kernel(self):
        """Kernel of the final-time output (both directions): :func:`final_time_kernel`."""
        return final_time_kernel(self.kernel, self.kernel_rev)


def natural_key(name: str):
    """Sort key that puts ``block_2`` before ``block_10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def layer_sort_key(name: str):
    """Sort key of a layer name ``"a/b/c"``: natural order level by level (parents first)."""
    return [natural_key(part) for part in name.split("/")]


def _as_tuple(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def collect_layers(intermediates) -> list[LayerIO]:
    """Every (kernel, input) pair in an intermediates tree, in natural module-name order.

    Args:
      intermediates: the ``"intermediates"`` collection returned by
        ``model.apply(..., mutable=["intermediates"])`` (or the whole mutated-variables dict);
        sown values are tuples, one entry per module application.

    Returns:
      list of :class:`LayerIO`, ordered ``block_0, block_1, ..., block_10`` (natural order of
      the module path, not dict order: pytree flattening sorts keys as strings).
    """
    found = []

    def walk(node, path):
        if "input" in node and "kernel" in node:
            inputs, kernels = _as_tuple(node["input"]), _as_tuple(node["kernel"])
            kernels_rev = _as_tuple(node["kernel_rev"]) if "kernel_rev" in node else (None,) * len(kernels)
            if not len(inputs) == len(kernels) == len(kernels_rev):
                raise ValueError(f"{'/'.join(path)}: {len(inputs)} sown inputs, {len(kernels)} kernels "
                                 f"and {len(kernels_rev)} reverse kernels; they must pair up")
            name = "/".join(path)
            for j, (u, K, K_rev) in enumerate(zip(inputs, kernels, kernels_rev)):
                found.append(LayerIO(name if len(inputs) == 1 else f"{name}[{j}]", K, u, K_rev))
        for key, child in node.items():
            if isinstance(child, Mapping):
                walk(child, path + (key,))

    if not isinstance(intermediates, Mapping):
        raise ValueError(f"intermediates must be a (nested) mapping, got {type(intermediates).__name__}")
    if isinstance(intermediates.get("intermediates"), Mapping):  # the whole mutated-variables dict
        intermediates = intermediates["intermediates"]
    walk(intermediates, ())
    return sorted(found, key=lambda layer: layer_sort_key(layer.name))
