"""The ``bound`` section of an experiment config (read by the trainer): :class:`BoundOptions`.

Keys: ``init_scaling`` (apply :func:`rescale_init` before training), ``init_batch_size``
(sequences of the batch it uses), ``reg_lambda`` (weight of :func:`regularizer` in the loss;
0 = off), ``measure`` (:data:`MEASURES`), ``channel_reduce`` and ``layer_reduce``
(:data:`REDUCTIONS`), ``stop_gradient_stats``, ``readout`` (``auto`` follows
``model.pooling``).
"""

from __future__ import annotations

import dataclasses

from ssm_jax import options as opt
from ssm_jax.bound.measure import MEASURES, READOUTS
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
    channel_reduce: str = option("mean", "reduction of tau over a layer's channels",
                                 choices=tuple(REDUCTIONS))
    layer_reduce: str = option("sum", "reduction over layers", choices=tuple(REDUCTIONS))
    stop_gradient_stats: bool = option(True, "treat the input statistics as constants")
    penalty: str = option("measure", "what reg_lambda weighs: 'measure' = the regularizer (9); "
                          "'kernel_l2' / 'kernel_l1' / 'c_l2' = data-independent penalties",
                          choices=("measure", "kernel_l2", "kernel_l1", "c_l2"))
    readout: str = option("auto", "output the measure bounds: 'last' (final time), 'mean' "
                          "(time mean), 'auto' (follow model.pooling)",
                          choices=("auto",) + READOUTS)


def resolve_readout(readout: str, pooling=None) -> str:
    """``bound.readout`` with "auto" resolved from ``model.pooling`` ("mean" -> "mean",
    "last"/"none"/None -> "last")."""
    if readout != "auto":
        return readout
    return "mean" if pooling == "mean" else "last"


def _bound_options(cfg) -> BoundOptions:
    """``cfg`` (a BoundOptions, the ``bound`` section as a mapping, or a whole config with a
    ``bound`` entry) as :class:`BoundOptions`, checked (OptionError naming ``bound.<key>``)."""
    if isinstance(cfg, BoundOptions):
        return cfg
    section = cfg["bound"] if hasattr(cfg, "keys") and "bound" in cfg.keys() else cfg
    return opt.parse(BoundOptions, section, "bound.")


def make_regularizer(cfg, pooling=None, padded: bool = False):
    """The regularizer as a loss term configured by the ``bound`` section.

    Args:
      cfg: :class:`BoundOptions`, the ``bound`` section as a mapping (missing keys take the
        defaults), or a whole config with a ``bound`` entry.
      pooling: the model's pooling (resolves ``readout="auto"``).
      padded: the data has sequences of different lengths: the term reads ``batch["lengths"]``
        and measures each sequence's own read-out (per-sequence weights).

    Returns:
      ``term(intermediates, batch=None) -> () float``: :func:`regularizer` of the forward pass's
      intermediates with the configured measure, read-out, reductions and stop-gradient (the
      statistics come from the sown layer inputs; ``batch`` gives only the lengths). The weight ``reg_lambda`` is
      applied by the caller.
    """
    b = _bound_options(cfg)
    options = dict(measure=b.measure, channel_reduce=b.channel_reduce, layer_reduce=b.layer_reduce,
                   stop_gradient_stats=b.stop_gradient_stats,
                   readout=resolve_readout(b.readout, pooling))

    def term(intermediates, batch=None):
        lengths = batch["lengths"] if padded and batch is not None else None
        if lengths is not None:  # (batch, 2) document pairs: the encoder sees 2 * batch rows
            lengths = lengths.reshape(-1)
        return regularizer(intermediates, lengths=lengths, **options)

    return term
