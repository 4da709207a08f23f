"""The papers' additions to plain training, each one :class:`Extension` selected by the config.

The trainer knows no paper and no layer: it asks every active extension, in
:data:`EXTENSIONS` order, to

* ``init(model, variables, batch, padded)``: change the initial variables (paper 2's timescale
  and eigenvalue init, then paper 1's init scaling rule (8));
* ``loss_terms()``: ``{name: (weight, term(intermediates, batch, params))}`` added to the task
  loss (paper 1's regularizer (9) or a data-independent penalty);
* ``output_terms()``: ``{name: (weight, term(outputs, batch))}`` (paper 3's collapse penalty);
* ``project()``: ``project(old_params, new_params)`` after every optimizer step (paper 2's
  Re <= 0 projection) or None;
* ``log(params)``: numbers logged once per log step in the ``params`` section of the metrics
  (paper 3's s_A and bound terms).

An extension is built by ``from_config(cfg, layers, train_split, seq_len)``, which returns
None when the config does not ask for it. Loss and output terms carry their config weight; the
vectorized trainer passes one weight per member instead (:data:`MEMBER_WEIGHTS` names the
config key of each term's weight).
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from ssm_jax.bound import make_regularizer, rescale_init, resolve_readout
from ssm_jax.bound.penalties import make_penalty
from ssm_jax.bound.selective import model_bound_report
from ssm_jax.bound.timescale_init import apply_init, real_part_projection
from ssm_jax.training.sharding import to_host
from ssm_jax.training.steps import collapse_penalty

# the config key holding the weight of each loss or output term (a per-member value in the
# vectorized trainer)
MEMBER_WEIGHTS = {"reg": "bound.reg_lambda", "collapse": "train.collapse_penalty"}


def padded(split) -> bool:
    """The split holds sequences shorter than its padded length (also for two-document inputs
    ``(n, 2, L)`` with lengths ``(n, 2)``)."""
    if split is None:
        return False
    lengths = np.asarray(split.lengths)
    L = split.inputs.shape[2] if lengths.ndim == 2 else split.inputs.shape[1]  # (n, 2, L) pairs
    return bool(np.any(lengths < L))


class Extension:
    """An addition to training; every hook defaults to doing nothing."""

    name = "extension"

    def init(self, model, variables, batch, padded: bool):
        return variables

    def loss_terms(self) -> dict:
        return {}

    def output_terms(self) -> dict:
        return {}

    def project(self) -> Callable | None:
        return None

    def log(self, params) -> dict:
        return {}


class TimescaleInit(Extension):
    """Paper 2: timescale and eigenvalues from the data at init (``init.*``), and the real-part
    projection after every step (``init.real_param``)."""

    name = "timescale_init"

    def __init__(self, opts, layers):
        self.opts, self.layers = opts, layers

    @classmethod
    def from_config(cls, cfg, layers, train_split, seq_len):
        if not cfg.init.active and real_part_projection(cfg.init, layers) is None:
            return None
        return cls(cfg.init, layers)

    def init(self, model, variables, batch, padded):
        if not self.opts.active:
            return variables
        return apply_init(model, variables, batch["inputs"], batch["lengths"], self.opts)

    def project(self):
        return real_part_projection(self.opts, self.layers)


class InitScaling(Extension):
    """Paper 1's init scaling rule (8) (``bound.init_scaling``), with the measure and read-out
    the regularizer uses."""

    name = "init_scaling"

    def __init__(self, bound, pooling):
        self.bound, self.pooling = bound, pooling

    @classmethod
    def from_config(cls, cfg, layers, train_split, seq_len):
        return cls(cfg.bound, cfg.model.pooling) if cfg.bound.init_scaling else None

    def init(self, model, variables, batch, padded):
        lengths = batch["lengths"] if padded else None
        return rescale_init(model, variables, batch["inputs"], lengths, measure=self.bound.measure,
                            readout=resolve_readout(self.bound.readout, self.pooling))


class Regularizer(Extension):
    """Paper 1's regularizer (9) (``bound.penalty="measure"``) or a data-independent penalty,
    weighted by ``bound.reg_lambda``."""

    name = "regularizer"

    def __init__(self, weight: float, term):
        self.weight, self.term = weight, term

    @classmethod
    def from_config(cls, cfg, layers, train_split, seq_len):
        b = cfg.bound
        if b.reg_lambda <= 0:
            return None
        if b.penalty != "measure":
            return cls(b.reg_lambda, make_penalty(b.penalty, layers, channel_reduce=b.channel_reduce,
                                                  layer_reduce=b.layer_reduce))
        # with dropout, the term reads a pass without it (its ``without_dropout`` flag)
        return cls(b.reg_lambda, make_regularizer(b, pooling=cfg.model.pooling,
                                                  padded=padded(train_split),
                                                  dropout=cfg.model.dropout))

    def loss_terms(self):
        return {"reg": (self.weight, self.term)}


class CollapsePenalty(Extension):
    """Paper 3's collapse-avoidance term on the outputs (``train.collapse_penalty``)."""

    name = "collapse_penalty"

    def __init__(self, weight: float, min_std: float):
        self.weight, self.min_std = weight, min_std

    @classmethod
    def from_config(cls, cfg, layers, train_split, seq_len):
        t = cfg.train
        return cls(t.collapse_penalty, t.collapse_min_std) if t.collapse_penalty > 0 else None

    def output_terms(self):
        return {"collapse": (self.weight, lambda out, batch: collapse_penalty(out, self.min_std))}


class SelectiveBound(Extension):
    """Paper 3: the spectral abscissa s_A, the norms and the bound terms of a paper-form
    selective layer, logged once per log step (and at init)."""

    name = "selective_bound"

    def __init__(self, layers, seq_len: int):
        self.layers, self.seq_len = layers, seq_len

    @classmethod
    def from_config(cls, cfg, layers, train_split, seq_len):
        if not any(getattr(c, "layer_name", "") == "selective" for c in layers.values()):
            return None
        return cls(layers, seq_len)

    def log(self, params):
        report = model_bound_report(to_host(params), self.layers, self.seq_len)
        return {k: v for k, v in report.items()
                if isinstance(v, (int, float)) and k not in ("d", "N")}


# in the order their init hooks run (paper 2's init before paper 1's rule)
EXTENSIONS = (TimescaleInit, InitScaling, Regularizer, CollapsePenalty, SelectiveBound)


def loss_terms(cfg, train_split=None, layers: Mapping | None = None) -> dict:
    """``{name: (weight, term)}``: the loss terms of the active extensions of ``cfg``."""
    return {name: term for ext in build_extensions(cfg, layers or {}, train_split)
            for name, term in ext.loss_terms().items()}


def build_extensions(cfg, layers: Mapping, train_split=None, seq_len: int | None = None) -> list:
    """The active extensions of ``cfg`` (a parsed Config) for a model with SSM ``layers``
    trained on ``train_split`` (sequences of length ``seq_len``), in :data:`EXTENSIONS` order."""
    built = (cls.from_config(cfg, layers, train_split, seq_len) for cls in EXTENSIONS)
    return [e for e in built if e is not None]


__all__ = ["EXTENSIONS", "MEMBER_WEIGHTS", "CollapsePenalty", "Extension", "InitScaling",
           "Regularizer", "SelectiveBound", "TimescaleInit", "build_extensions", "loss_terms",
           "padded"]
