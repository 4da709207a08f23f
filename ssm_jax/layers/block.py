"""Residual sequence block: norm -> SSM -> GELU -> dropout -> output projection -> dropout ->
residual."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from ssm_jax.kernels.checks import check_choice
from ssm_jax.layers.base import get_layer, layer_names, layer_options
from ssm_jax.options import option

NORMS = ("layer", "batch", "none")
PROJECTIONS = ("linear", "glu", "none")


def ssm_options(layer: str, ssm: Any):
    """``ssm`` (None, a mapping or the layer's Options) as the Options of ``layer``."""
    return layer_options(layer, ssm)


class SequenceBlock(nn.Module):
    """One residual block around an SSM layer.

    ``x -> Dropout(GELU(SSM(norm(x))))`` then the output projection: ``projection="linear"``:
    ``Dense(H)``; ``"glu"``: a dense layer with 2H outputs ``(a, b)`` returning
    ``a * sigmoid(b)``; then dropout and the residual. Pre-norm normalizes the block input,
    post-norm the block output. Padded positions (``mask == False``) are zeroed before the SSM,
    so they never reach valid positions (also in the backward direction of bidirectional
    layers).

    The bare SSM of the theory (no norm, no nonlinearity, no projection, no residual):
    ``norm="none", projection="none", residual=False`` gives ``x -> SSM(x)``;
    ``projection="none"`` drops the GELU, the dropout and the dense layer.

    Attributes:
      features: H.
      layer: registered SSM layer name (``ssm_jax.layers.layer_names()``).
      ssm: the layer's options (its ``Options`` dataclass; a mapping is converted).
      norm, prenorm, projection, dropout, residual: options (type, default, allowed values,
        help), which the model (``ssm_jax.models``) and the ``model`` config section reuse.
    """

    features: int
    layer: str = option("s4d", "SSM layer type", choices=layer_names)
    ssm: Any = None
    norm: str = option("layer", "normalization of each block ('none': no norm)", choices=NORMS)
    prenorm: bool = option(True, "normalize the block input (else the block output)")
    projection: str = option("glu", "output projection of each block after GELU ('none': no "
                             "GELU, dropout or projection)", choices=PROJECTIONS)
    dropout: float = option(0.0, "dropout rate", minimum=0.0, maximum=1.0, exclusive_maximum=True)
    residual: bool = option(True, "residual connection around every block")

    def __post_init__(self):
        object.__setattr__(self, "ssm", ssm_options(self.layer, self.ssm))  # hashable, checked
        super().__post_init__()

    def validate(self):
        check_choice("norm", self.norm, NORMS)
        check_choice("projection", self.projection, PROJECTIONS)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def _norm(self, x, train: bool, name: str):
        if self.norm == "batch":
            return nn.BatchNorm(use_running_average=not train, name=name)(x)
        if self.norm == "layer":
            return nn.LayerNorm(name=name)(x)
        return x

    @nn.compact
    def __call__(self, x, mask, *, train: bool = False):
        """Args: x: (batch, L, H) float; mask: (batch, L) bool, True at valid positions.
        Returns (batch, L, H)."""
        self.validate()
        skip = x
        if self.prenorm:
            x = self._norm(x, train, "norm")
        x = x * mask[..., None]
        x = get_layer(self.layer)(features=self.features, **self.ssm.as_kwargs(), name="ssm")(x)
        if self.projection != "none":
            x = nn.Dropout(self.dropout, deterministic=not train)(nn.gelu(x))
            if self.projection == "glu":
                a, b = jnp.split(nn.Dense(2 * self.features, name="out")(x), 2, axis=-1)
                x = a * nn.sigmoid(b)
            else:
                x = nn.Dense(self.features, name="out")(x)
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        if self.residual:
            x = skip + x
        if not self.prenorm:
            x = self._norm(x, train, "norm")
        return x
