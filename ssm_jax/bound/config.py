"""The ``bound`` section of an experiment config (read by the trainer).

Keys: ``init_scaling`` (bool, apply :func:`rescale_init` before training), ``init_batch_size``
(int >= 1, sequences of the batch it uses), ``reg_lambda`` (float >= 0, weight of
:func:`regularizer` in the loss; 0 = off), ``measure`` (:data:`MEASURES`), ``channel_reduce``
and ``layer_reduce`` (:data:`REDUCTIONS`), ``stop_gradient_stats`` (bool).
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import ml_collections

from ssm_jax.bound.measure import MEASURES
from ssm_jax.bound.regularizer import REDUCTIONS, regularizer
from ssm_jax.kernels._checks import check_choice

BOUND_DEFAULTS = dict(
    init_scaling=False,
    init_batch_size=256,
    reg_lambda=0.0,
    measure="paper",
    channel_reduce="mean",
    layer_reduce="sum",
    stop_gradient_stats=True,
)


def default_bound_config() -> ml_collections.ConfigDict:
    """A ``bound`` section with the defaults (no scaling, no regularizer)."""
    return ml_collections.ConfigDict(dict(BOUND_DEFAULTS))


def validate_bound_config(cfg) -> ml_collections.ConfigDict:
    """Check the ``bound`` section and return it completed with the defaults.

    Args:
      cfg: a whole config with a ``bound`` entry, or the ``bound`` section itself (a
        ConfigDict or a mapping). Missing keys take the values of :data:`BOUND_DEFAULTS`.

    Returns:
      a new ConfigDict with all the keys of :data:`BOUND_DEFAULTS`.

    Raises:
      ValueError naming the bad key (``bound.<key>``) and the allowed values.
    """
    section = cfg["bound"] if "bound" in cfg else cfg
    values = dict(section.items()) if hasattr(section, "items") else None
    if values is None:
        raise ValueError(f"bound config must be a mapping, got {type(section).__name__}")
    unknown = sorted(set(values) - set(BOUND_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown key(s) bound.{', bound.'.join(unknown)}; "
                         f"valid keys: {', '.join(BOUND_DEFAULTS)}")
    out = {**BOUND_DEFAULTS, **values}
    for key in ("init_scaling", "stop_gradient_stats"):
        if not isinstance(out[key], bool):
            raise ValueError(f"bound.{key} must be True or False, got {out[key]!r}")
    size = out["init_batch_size"]
    if isinstance(size, bool) or not isinstance(size, Integral) or size < 1:
        raise ValueError(f"bound.init_batch_size must be an int >= 1, got {size!r}")
    lam = out["reg_lambda"]
    if isinstance(lam, bool) or not isinstance(lam, Real) or not (math.isfinite(lam) and lam >= 0):
        raise ValueError(f"bound.reg_lambda must be a finite float >= 0, got {lam!r}")
    check_choice("bound.measure", out["measure"], MEASURES)
    check_choice("bound.channel_reduce", out["channel_reduce"], tuple(REDUCTIONS))
    check_choice("bound.layer_reduce", out["layer_reduce"], tuple(REDUCTIONS))
    out["reg_lambda"] = float(lam)
    return ml_collections.ConfigDict(out)


def make_regularizer(cfg):
    """The regularizer as a loss term configured by the ``bound`` section.

    Args:
      cfg: a whole config with a ``bound`` entry, or the ``bound`` section (validated with
        :func:`validate_bound_config`).

    Returns:
      ``term(intermediates, batch=None) -> () float``: :func:`regularizer` of the forward pass's
      intermediates with the configured measure, reductions and stop-gradient; ``batch`` is
      ignored (the statistics come from the sown layer inputs). The weight ``reg_lambda`` is
      applied by the caller.
    """
    b = validate_bound_config(cfg)
    options = dict(measure=b.measure, channel_reduce=b.channel_reduce, layer_reduce=b.layer_reduce,
                   stop_gradient_stats=b.stop_gradient_stats)

    def term(intermediates, batch=None):
        del batch
        return regularizer(intermediates, **options)

    return term
