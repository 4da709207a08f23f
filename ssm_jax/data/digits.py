"""scikit-learn's 8x8 handwritten digits as length-64 pixel sequences (no download)."""

from __future__ import annotations

import numpy as np

from ssm_jax.data.registry import Dataset, DatasetInfo, register
from ssm_jax.data.splits import check_fractions, full_lengths, random_split_indices, split_arrays

DIGITS_DEFAULTS = {"seq_len": 64, "seed": 0, "train_fraction": 0.7, "validation_fraction": 0.1}


def load_digits_arrays() -> tuple:
    """All 1797 digits: ``x (1797, 64, 1) float32`` in [0, 1] (pixel / 16) read row by row,
    ``y (1797,) int32`` in 0..9."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (np.asarray(bunch.data, dtype=np.float32) / 16.0)[:, :, None]
    return x, np.asarray(bunch.target, dtype=np.int32)


@register("digits", defaults=DIGITS_DEFAULTS)
def build_digits(cfg: dict) -> Dataset:
    """Digits split train/validation/test by ``seed`` with the given fractions (rest = test).

    ``seq_len`` must stay 64 (it is only accepted so configs can state it).
    """
    if cfg["seq_len"] != 64:
        raise ValueError(f"digits sequences have length 64, got seq_len={cfg['seq_len']}")
    check_fractions(cfg["train_fraction"], cfg["validation_fraction"])
    x, y = load_digits_arrays()
    indices = random_split_indices(len(x), cfg["train_fraction"], cfg["validation_fraction"],
                                   cfg["seed"])
    info = DatasetInfo(name="digits", seq_len=64, input_kind="floats", vocab_size=None,
                       in_channels=1, num_classes=10)
    return Dataset(info, split_arrays(x, full_lengths(len(x), 64), y, indices))
