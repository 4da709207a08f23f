"""SequenceModel: encoder -> N residual SSM blocks -> pooling -> linear head; RetrievalModel:
the same stack on two documents.

The model's fields are declared once, by :class:`ModelFields` (the block's by
:class:`~ssm_jax.layers.SequenceBlock`, reused through :func:`~ssm_jax.options.option_of`):
both models take them, and :data:`ArchitectureOptions` (their frozen, checked form without the
fields a dataset sets) is what the trainer's ``model`` config section extends
(``ssm_jax.training.config.ModelOptions``), so a model built here with the defaults is the
trainer's default model.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from ssm_jax import options as opt
from ssm_jax.kernels.checks import check_choice
from ssm_jax.layers import SequenceBlock, layer_names
from ssm_jax.layers.block import ssm_options
from ssm_jax.options import option, option_of

POOLINGS = ("mean", "last", "last_position", "none")
ENCODERS = ("embedding", "linear")
HEADS = ("classification", "regression")

# Fields set from the dataset (``ssm_jax.training.loop.build_model``), not from a config.
DATASET_FIELDS = ("num_outputs", "vocab_size", "head")


class ModelFields(nn.Module):
    """The fields of :class:`SequenceModel` and :class:`RetrievalModel`, declared once.

    Attributes:
      num_outputs: classes (classification) or target dimension (regression).
      layer: registered SSM layer name (``ssm_jax.layers.layer_names()``).
      ssm: that layer's options: its ``Options`` dataclass (a mapping or None is converted,
        so the model is hashable and can be a static argument of ``jax.jit``).
      d_model: H, features of every block.
      n_layers: number of blocks (named ``block_0 ... block_{n-1}``).
      encoder: "embedding" (integer tokens, needs ``vocab_size``) or "linear" (float inputs).
      norm, prenorm, projection, dropout, residual: every block's (see ``SequenceBlock``).
      pooling: "mean" (over valid positions), "last" (last valid position), "last_position"
        (the last position of the padded input: ``lengths`` are ignored, so pad tokens are
        embedded and run through every block before the read-out, as the selective-SSM
        authors' ListOps model does) or "none" (per-position outputs).
      head: "classification" or "regression" (the loss is chosen by the trainer).
      head_bias: the linear head has a bias.
      init_std: > 0: the embedding and the head weights are drawn from N(0, init_std^2) (the
        selective-SSM paper's code: 1); 0: Flax's defaults.
    """

    num_outputs: int
    layer: str = option_of(SequenceBlock, "layer")
    ssm: Any = None
    d_model: int = option(64, "H, features of every block", positive=True)
    n_layers: int = option(4, "number of residual blocks", positive=True)
    encoder: str = option("linear", "input encoder: 'embedding' (integer tokens, needs "
                          "vocab_size) or 'linear' (float inputs)", choices=ENCODERS)
    vocab_size: int | None = None
    norm: str = option_of(SequenceBlock, "norm")
    prenorm: bool = option_of(SequenceBlock, "prenorm")
    projection: str = option_of(SequenceBlock, "projection")
    dropout: float = option_of(SequenceBlock, "dropout")
    pooling: str = option("mean", "pooling over time before the head", choices=POOLINGS)
    head: str = option("classification", "classification or regression head", choices=HEADS)
    residual: bool = option_of(SequenceBlock, "residual")
    head_bias: bool = option(True, "the linear head has a bias")
    init_std: float = option(0.0, "N(0, init_std^2) init of the embedding and the head (0: Flax "
                             "defaults; the selective-SSM paper's code uses 1)", minimum=0.0)

    def __post_init__(self):
        check_choice("layer", self.layer, layer_names())
        object.__setattr__(self, "ssm", ssm_options(self.layer, self.ssm))
        super().__post_init__()

    def field_values(self) -> dict:
        """``{name: value}`` of every field of :class:`ModelFields` (not Flax's parent and name)."""
        return {name: getattr(self, name) for name in _FIELD_NAMES}


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(ModelFields)
                     if f.name not in ("parent", "name"))
# The fields every SequenceBlock receives from the model (all of the block's but H).
_BLOCK_FIELDS = tuple(f.name for f in dataclasses.fields(SequenceBlock)
                      if f.name not in ("features", "parent", "name"))


def _architecture_kwargs(self) -> dict:
    """The architecture options as keyword arguments of :class:`SequenceModel` (only those of
    :data:`ArchitectureOptions`, also on an instance of a subclass with more keys)."""
    return {f.name: getattr(self, f.name) for f in dataclasses.fields(ArchitectureOptions)}


ArchitectureOptions = opt.options_class(
    ModelFields, "ArchitectureOptions", exclude=DATASET_FIELDS,
    namespace={"as_kwargs": _architecture_kwargs},
    doc="The model's architecture options (frozen, hashable): the fields of ModelFields "
        "without those set from the dataset (num_outputs, vocab_size, head).")


class SequenceModel(ModelFields):
    """Deep SSM for classification or regression (fields: :class:`ModelFields`)."""

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
            block = SequenceBlock(self.d_model, **{n: getattr(self, n) for n in _BLOCK_FIELDS},
                                  name=f"block_{i}")
            x = block(x, mask, train=train)
        if self.pooling == "mean":
            x = jnp.sum(x * mask[..., None], axis=1) / jnp.maximum(lengths, 1)[:, None]
        elif self.pooling in ("last", "last_position"):
            x = x[jnp.arange(batch), jnp.maximum(lengths, 1) - 1]
        head_init = (nn.initializers.normal(self.init_std) if self.init_std > 0
                     else nn.linear.default_kernel_init)
        return nn.Dense(self.num_outputs, use_bias=self.head_bias, kernel_init=head_init,
                        name="head")(x)


class RetrievalModel(ModelFields):
    """Two-document classifier (LRA Retrieval): one shared SSM encoder for both documents.

    Each document goes through the same :class:`SequenceModel` (encoder, blocks, pooling and a
    linear map to ``d_model`` features, named ``encoder_stack``; built from this model's
    fields, with ``num_outputs=d_model`` and a regression head; both documents of a batch in
    one application, so every SSM layer is applied once); the pooled features ``a, b`` are
    combined as ``[a, b, a * b, a - b]`` and classified by a two-layer MLP (``Dense(d_model)``,
    GELU, ``Dense(num_outputs)``), as in the LRA baselines.

    Fields: :class:`ModelFields` (``pooling`` "mean" or "last").
    """

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
        stack = SequenceModel(**{**self.field_values(), "num_outputs": self.d_model,
                                 "head": "regression"}, name="encoder_stack")
        features = stack(flat, flat_lengths, train=train).reshape(batch, 2, self.d_model)
        a, b = features[:, 0], features[:, 1]
        x = jnp.concatenate([a, b, a * b, a - b], axis=-1)
        x = nn.gelu(nn.Dense(self.d_model, name="mlp")(x))
        head_init = (nn.initializers.normal(self.init_std) if self.init_std > 0
                     else nn.linear.default_kernel_init)
        return nn.Dense(self.num_outputs, kernel_init=head_init, name="head")(x)
