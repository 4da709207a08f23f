"""Residual sequence block: norm -> SSM -> activation -> dropout -> linear -> dropout -> residual."""

from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax.numpy as jnp

from ssm_jax.kernels._checks import check_choice
from ssm_jax.layers.s4d import S4D
from ssm_jax.layers.s5 import S5

SSM_LAYERS = {"s4d": S4D, "s5": S5}
NORMS = ("layer", "batch")
ACTIVATIONS = ("gelu", "glu")


class SequenceBlock(nn.Module):
    """One residual block around an SSM layer (the SSM submodule is always named ``ssm``).

    ``activation="gelu"``: ``Dense(H)(dropout(gelu(ssm(x))))``; ``"glu"``: the dense layer
    has 2H outputs ``(a, b)`` and returns ``a * sigmoid(b)``. Pre-norm normalizes the block input,
    post-norm the block output. Padded positions (``mask == False``) are zeroed before the SSM,
    so they never reach valid positions (also in the backward direction of bidirectional layers).
    """

    features: int
    layer: str = "s4d"
    ssm: Mapping[str, Any] = None  # keyword arguments of the SSM layer
    norm: str = "layer"
    prenorm: bool = True
    activation: str = "gelu"
    dropout: float = 0.0

    def validate(self):
        check_choice("layer", self.layer, tuple(SSM_LAYERS))
        check_choice("norm", self.norm, NORMS)
        check_choice("activation", self.activation, ACTIVATIONS)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def _norm(self, x, train: bool, name: str):
        if self.norm == "batch":
            return nn.BatchNorm(use_running_average=not train, name=name)(x)
        return nn.LayerNorm(name=name)(x)

    @nn.compact
    def __call__(self, x, mask, *, train: bool = False):
        """Args: x: (B, L, H) float; mask: (B, L) bool, True at valid positions. Returns (B, L, H)."""
        self.validate()
        skip = x
        if self.prenorm:
            x = self._norm(x, train, "norm")
        x = x * mask[..., None]
        x = SSM_LAYERS[self.layer](features=self.features, **dict(self.ssm or {}), name="ssm")(x)
        x = nn.Dropout(self.dropout, deterministic=not train)(nn.gelu(x))
        if self.activation == "glu":
            a, b = jnp.split(nn.Dense(2 * self.features, name="out")(x), 2, axis=-1)
            x = a * nn.sigmoid(b)
        else:
            x = nn.Dense(self.features, name="out")(x)
        x = skip + nn.Dropout(self.dropout, deterministic=not train)(x)
        if not self.prenorm:
            x = self._norm(x, train, "norm")
        return x
