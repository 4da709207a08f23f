"""Helpers shared by the loaders: seeded index splits and padding."""

from __future__ import annotations

import numpy as np

from ssm_jax.data.registry import Split


def check_fractions(train_fraction: float, validation_fraction: float) -> None:
    """Raise ValueError unless both fractions are in (0, 1) and leave room for a test split."""
    if not (0 < train_fraction < 1 and 0 < validation_fraction < 1
            and train_fraction + validation_fraction < 1):
        raise ValueError(
            f"need 0 < train_fraction, validation_fraction and train_fraction + "
            f"validation_fraction < 1; got {train_fraction} and {validation_fraction}"
        )


def random_split_indices(num: int, train_fraction: float, validation_fraction: float,
                         seed: int) -> dict:
    """Shuffle ``range(num)`` with ``seed`` and cut it into train / validation / test.

    Returns ``{"train": (n_tr,), "validation": (n_va,), "test": (n_te,)}`` int64 indices with
    ``n_tr = round(train_fraction * num)``, ``n_va = round(validation_fraction * num)`` and
    the rest for test. Each list is sorted.
    """
    check_fractions(train_fraction, validation_fraction)
    order = np.random.default_rng(seed).permutation(num)
    n_train = int(round(train_fraction * num))
    n_val = int(round(validation_fraction * num))
    if min(n_train, n_val, num - n_train - n_val) <= 0:
        raise ValueError(f"{num} examples are too few for fractions "
                         f"{train_fraction}/{validation_fraction}")
    parts = np.split(order, [n_train, n_train + n_val])
    return {name: np.sort(part) for name, part in zip(("train", "validation", "test"), parts)}


def split_arrays(inputs: np.ndarray, lengths: np.ndarray, labels: np.ndarray,
                 indices: dict) -> dict:
    """``{split: Split}`` from full arrays (first dim ``n``) and ``{split: (k,) indices}``."""
    return {name: Split(inputs[idx], lengths[idx], labels[idx]) for name, idx in indices.items()}


def full_lengths(num: int, seq_len: int) -> np.ndarray:
    """``(num,)`` int32 filled with ``seq_len`` (for unpadded fixed-length data)."""
    return np.full((num,), seq_len, dtype=np.int32)


def pad_tokens(sequences: list, seq_len: int, pad_id: int = 0) -> tuple:
    """Pad/truncate int sequences to ``seq_len``.

    Args:
      sequences: list of 1-d int arrays or lists.
    Returns:
      ``(tokens (n, seq_len) int32, lengths (n,) int32)``; sequences longer than ``seq_len``
      are truncated at the end.
    """
    tokens = np.full((len(sequences), seq_len), pad_id, dtype=np.int32)
    lengths = np.zeros((len(sequences),), dtype=np.int32)
    for row, seq in enumerate(sequences):
        seq = np.asarray(seq, dtype=np.int32)[:seq_len]
        tokens[row, :len(seq)] = seq
        lengths[row] = len(seq)
    return tokens, lengths
