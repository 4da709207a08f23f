"""The ``bound`` section of an experiment config (read by the trainer): :class:`BoundOptions`.

Keys: ``init_scaling`` (apply :func:`rescale_init` before training), ``init_batch_size``
(sequences of the batch it uses), ``reg_lambda`` (weight of :func:`regularizer` in the loss;
0 = off), ``measure`` (:data:`MEASURES`), ``channel_reduce`` and ``layer_reduce``
(:data:`REDUCTIONS`), ``stop_gradient_stats``, ``readout`` (:func:`resolve_readout`).

Normalization of lambda (``channel_reduce``): the loss term is ``reg_lambda *
layer_reduce_l channel_reduce_h tau[l][h]``. With the default ``"mean"`` over channels it is
``reg_lambda * sum_l mean_h tau = (reg_lambda / H) * sum_l sum_h tau`` (H = ``model.d_model``);
with ``"sum"`` (the sum over layers and channels of the reconstructed (9),
``docs/theory.md#paper-1-the-regularizer-9``) it is
``reg_lambda * sum_l sum_h tau``, H times larger at the same lambda. So a lambda of the mean
form equals ``reg_lambda / H`` of the sum form, and ``reg_lambda * H`` is the weight the same
lambda puts on every layer's mean tau under the sum form (what the ablation reports beside
lambda).

Read-out (``readout``): ``"auto"`` (default) measures every SSM layer's output at the final
time (the theorem's output; a layer below the top passes every time step on) except the top
layer of a mean-pooled model (``model.pooling == "mean"``), whose time mean the pooling uses:
the stack read-out ``"top_mean"`` of :func:`~ssm_jax.bound.measure.layer_readouts`. Models
that pool otherwise get ``"last"`` at every layer. ``"last"``, ``"mean"`` and ``"top_mean"``
force one of them (``"mean"`` at every layer was the default before).

Statistics: the regularizer's input statistics come from a forward pass without dropout, the
pass the init rule (8) measures in (:func:`make_regularizer`).
"""

from __future__ import annotations

import dataclasses

from ssm_jax import options as opt
from ssm_jax.bound.measure import MEASURES, STACK_READOUTS
from ssm_jax.bound.regularizer import REDUCTIONS, regularizer
from ssm_jax.options import option


@dataclasses.dataclass(frozen=True)
class BoundOptions:
    """The validated ``bound`` section (frozen)."""

    init_scaling: bool = option(False, "apply the init scaling rule (8) before training")
    init_batch_size: int = option(256, "training sequences of the batch the init rule uses",
                                  minimum=1)
    reg_lambda: float = option(0.0, "weight of the regularizer (9) in the loss; 0 = off",
                               minimum=0.0)
    measure: str = option("paper", "generalization measure", choices=MEASURES)
    channel_reduce: str = option("mean", "reduction of tau over a layer's channels: 'mean' "
                                 "(lambda weighs the mean over channels, i.e. the sum over "
                                 "channels with lambda / d_model) or 'sum' (the sum of (9))",
                                 choices=tuple(REDUCTIONS))
    layer_reduce: str = option("sum", "reduction over layers", choices=tuple(REDUCTIONS))
    stop_gradient_stats: bool = option(True, "treat the input statistics as constants")
    penalty: str = option("measure", "what reg_lambda weighs: 'measure' = the regularizer (9); "
                          "'kernel_l2' / 'kernel_l1' / 'c_l2' = data-independent penalties",
                          choices=("measure", "kernel_l2", "kernel_l1", "c_l2"))
    readout: str = option("auto", "output the measure bounds, per SSM layer: 'last' (final "
                          "time) or 'mean' (time mean) at every layer; 'top_mean' (final time "
                          "below the top layer, time mean at it); 'auto' = 'top_mean' for "
                          "model.pooling 'mean', else 'last'",
                          choices=("auto",) + STACK_READOUTS)


def resolve_readout(readout: str, pooling=None) -> str:
    """``bound.readout`` as a stack read-out (:data:`~ssm_jax.bound.measure.STACK_READOUTS`):
    "auto" is "top_mean" for a mean-pooled model (``pooling == "mean"``: the final time at
    every layer but the top one, whose time mean the pooling takes) and "last" otherwise
    ("last"/"last_position"/"none"/None); other values are returned as they are."""
    if readout != "auto":
        return readout
    return "top_mean" if pooling == "mean" else "last"


def _bound_options(cfg) -> BoundOptions:
    """``cfg`` (a BoundOptions, the ``bound`` section as a mapping, or a whole config with a
    ``bound`` entry) as :class:`BoundOptions`, checked (OptionError naming ``bound.<key>``)."""
    if isinstance(cfg, BoundOptions):
        return cfg
    section = cfg["bound"] if hasattr(cfg, "keys") and "bound" in cfg.keys() else cfg
    return opt.parse(BoundOptions, section, "bound.")


def make_regularizer(cfg, pooling=None, padded: bool = False, dropout: float = 0.0):
    """The regularizer as a loss term configured by the ``bound`` section.

    Args:
      cfg: :class:`BoundOptions`, the ``bound`` section as a mapping (missing keys take the
        defaults), or a whole config with a ``bound`` entry.
      pooling: the model's pooling (resolves ``readout="auto"``).
      padded: the data has sequences of different lengths: the term reads ``batch["lengths"]``
        and measures each sequence's own read-out (per-sequence weights).
      dropout: the model's dropout rate. Above 0 the term is marked ``without_dropout = True``:
        the loss (:func:`ssm_jax.training.steps.make_loss`) then hands it the intermediates of
        a second, train-mode forward pass with dropout off (:func:`without_dropout`), so its
        statistics are those the init rule (8) uses, not those of the dropped-out pass the
        task loss sees. With no dropout the two passes agree and only one is run.

    Returns:
      ``term(intermediates, batch=None, params=None) -> () float``: :func:`regularizer` of a forward pass's
      intermediates with the configured measure, read-out, reductions and stop-gradient (the
      statistics come from the sown layer inputs; ``batch`` gives only the lengths), with the
      attribute ``without_dropout``. The weight ``reg_lambda`` is applied by the caller.
    """
    b = _bound_options(cfg)
    options = dict(measure=b.measure, channel_reduce=b.channel_reduce, layer_reduce=b.layer_reduce,
                   stop_gradient_stats=b.stop_gradient_stats,
                   readout=resolve_readout(b.readout, pooling))

    def term(intermediates, batch=None, params=None):
        lengths = batch["lengths"] if padded and batch is not None else None
        if lengths is not None:  # (batch, 2) document pairs: the encoder sees 2 * batch rows
            lengths = lengths.reshape(-1)
        return regularizer(intermediates, lengths=lengths, **options)

    term.without_dropout = dropout > 0
    return term
