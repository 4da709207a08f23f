"""SequenceModel: encoder -> N residual SSM blocks -> pooling -> linear head."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from ssm_jax.kernels._checks import check_choice
from ssm_jax.layers import SequenceBlock, layer_names
from ssm_jax.layers.block import ssm_options

POOLINGS = ("mean", "last", "last_position", "none")
ENCODERS = ("embedding", "linear")
HEADS = ("classification", "regression")


class SequenceModel(nn.Module):
    """Deep SSM for classification or regression.

    Attributes:
      num_outputs: classes (classification) or target dimension (regression).
      d_model: H, features of every block.
      n_layers: number of blocks (named ``block_0 ... block_{n-1}``).
      layer: registered SSM layer name (``ssm_jax.layers.layer_names()``).
      ssm: that layer's options: its ``Options`` dataclass (a mapping or None is converted,
        so the model is hashable and can be a static argument of ``jax.jit``).
      encoder: "embedding" (integer tokens, needs ``vocab_size``) or "linear" (float inputs).
      pooling: "mean" (over valid positions), "last" (last valid position), "last_position"
        (the last position of the padded input: ``lengths`` are ignored, so pad tokens are
        embedded and run through every block before the read-out, as the selective-SSM
        authors' ListOps model does) or "none" (per-position outputs).
      head: "classification" or "regression" (the loss is chosen by the trainer).
      residual: residual connection around every block (see ``SequenceBlock``).
      head_bias: the linear head has a bias.
      init_std: > 0: the embedding and the head weights are drawn from N(0, init_std^2) (the
        selective-SSM paper's code: 1); 0: Flax's defaults.
    """

    num_outputs: int
    d_model: int = 64
    n_layers: int = 4
    layer: str = "s4d"
    ssm: Any = None
    encoder: str = "linear"
    vocab_size: int | None = None
    norm: str = "layer"
    prenorm: bool = True
    projection: str = "linear"
    dropout: float = 0.0
    pooling: str = "mean"
    head: str = "classification"
    residual: bool = True
    head_bias: bool = True
    init_std: float = 0.0  # > 0: N(0, init_std^2) embedding and head (else Flax defaults)

    def __post_init__(self):
        check_choice("layer", self.layer, layer_names())
        object.__setattr__(self, "ssm", ssm_options(self.layer, self.ssm))
        super().__post_init__()

    def validate(self):
        check_choice("pooling", self.pooling, POOLINGS)
        check_choice("encoder", self.encoder, ENCODERS)
        check_choice("head", self.head, HEADS)
        if self.encoder == "embedding" and not self.vocab_size:
            raise ValueError("encoder='embedding' needs vocab_size (got None)")
        for name in ("num_outputs", "d_model", "n_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @nn.compact
    def __call__(self, inputs, lengths=None, *, train: bool = False):
        """Args:
          inputs: (batch, L) int tokens (embedding encoder) or (batch, L, C) floats (linear
            encoder).
          lengths: (batch,) valid lengths (sequences are right-padded); None = all of length L.

        Returns:
          (batch, num_outputs), or (batch, L, num_outputs) with ``pooling="none"``.
        """
        self.validate()
        expected = 2 if self.encoder == "embedding" else 3
        if inputs.ndim != expected:
            layout = "(batch, L) int tokens" if expected == 2 else "(batch, L, C) floats"
            raise ValueError(f"inputs must be {layout} for encoder={self.encoder!r}, got shape {inputs.shape}")
        batch, L = inputs.shape[:2]
        if lengths is None or self.pooling == "last_position":
            lengths = jnp.full((batch,), L, jnp.int32)
        elif lengths.shape != (batch,):
            raise ValueError(f"lengths must have shape (batch,) = {(batch,)}, got {lengths.shape}")
        mask = jnp.arange(L)[None, :] < lengths[:, None]  # (batch, L)
        if self.encoder == "embedding":
            embed_init = (nn.initializers.normal(self.init_std) if self.init_std > 0
                          else nn.linear.default_embed_init)
            x = nn.Embed(self.vocab_size, self.d_model, embedding_init=embed_init,
                         name="encoder")(inputs)
        else:
            x = nn.Dense(self.d_model, name="encoder")(inputs)
        for i in range(self.n_layers):
            x = SequenceBlock(self.d_model, layer=self.layer, ssm=self.ssm, norm=self.norm,
                              prenorm=self.prenorm, projection=self.projection,
                              dropout=self.dropout, residual=self.residual,
                              name=f"block_{i}")(x, mask, train=train)
        if self.pooling == "mean":
            x = jnp.sum(x * mask[..., None], axis=1) / jnp.maximum(lengths, 1)[:, None]
        elif self.pooling in ("last", "last_position"):
            x = x[jnp.arange(batch), jnp.maximum(lengths, 1) - 1]
        head_init = (nn.initializers.normal(self.init_std) if self.init_std > 0
                     else nn.linear.default_kernel_init)
        return nn.Dense(self.num_outputs, use_bias=self.head_bias, kernel_init=head_init,
                        name="head")(x)


class RetrievalModel(nn.Module):
    """Two-document classifier (LRA Retrieval): one shared SSM encoder for both documents.

    Each document goes through the same ``SequenceModel`` stack (encoder, blocks, pooling and a
    linear map to ``d_model`` features, named ``encoder_stack``; both documents of a batch in
    one application, so every SSM layer is applied once); the pooled features ``a, b`` are
    combined as ``[a, b, a * b, a - b]`` and classified by a two-layer MLP (``Dense(d_model)``,
    GELU, ``Dense(num_outputs)``), as in the LRA baselines.

    Attributes: those of :class:`SequenceModel` (``pooling`` "mean" or "last").
    """

    num_outputs: int
    d_model: int = 64
    n_layers: int = 4
    layer: str = "s4d"
    ssm: Any = None
    encoder: str = "embedding"
    vocab_size: int | None = None
    norm: str = "layer"
    prenorm: bool = True
    projection: str = "linear"
    dropout: float = 0.0
    pooling: str = "mean"
    head: str = "classification"
    residual: bool = True
    head_bias: bool = True
    init_std: float = 0.0  # > 0: N(0, init_std^2) embedding and head weights (as SequenceModel)

    def __post_init__(self):
        check_choice("layer", self.layer, layer_names())
        object.__setattr__(self, "ssm", ssm_options(self.layer, self.ssm))
        super().__post_init__()

    @nn.compact
    def __call__(self, inputs, lengths=None, *, train: bool = False):
        """Args: inputs: (batch, 2, L) int tokens (or (batch, 2, L, C) floats); lengths:
        (batch, 2) valid lengths or None. Returns (batch, num_outputs)."""
        if inputs.ndim < 3 or inputs.shape[1] != 2:
            raise ValueError(f"inputs must be (batch, 2, L[, C]) document pairs, got shape {inputs.shape}")
        if self.pooling not in ("mean", "last"):
            raise ValueError(f"pooling must be 'mean' or 'last' for two documents, got {self.pooling!r}")
        batch = inputs.shape[0]
        flat = inputs.reshape((2 * batch,) + inputs.shape[2:])  # doc 0, doc 1 of example 0, ...
        flat_lengths = None if lengths is None else jnp.asarray(lengths).reshape(2 * batch)
        stack = SequenceModel(
            num_outputs=self.d_model, d_model=self.d_model, n_layers=self.n_layers,
            layer=self.layer, ssm=self.ssm, encoder=self.encoder, vocab_size=self.vocab_size,
            norm=self.norm, prenorm=self.prenorm, projection=self.projection,
            dropout=self.dropout, pooling=self.pooling, head="regression",
            residual=self.residual, head_bias=self.head_bias, init_std=self.init_std,
            name="encoder_stack")
        features = stack(flat, flat_lengths, train=train).reshape(batch, 2, self.d_model)
        a, b = features[:, 0], features[:, 1]
        x = jnp.concatenate([a, b, a * b, a - b], axis=-1)
        x = nn.gelu(nn.Dense(self.d_model, name="mlp")(x))
        head_init = (nn.initializers.normal(self.init_std) if self.init_std > 0
                     else nn.linear.default_kernel_init)
        return nn.Dense(self.num_outputs, kernel_init=head_init, name="head")(x)
