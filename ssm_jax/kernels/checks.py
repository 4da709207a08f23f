"""Argument checks shared by the kernels, the layers, the model and ``ssm_jax.bound``: raise a
one-line ValueError before any compute, naming the argument and its shape (or the valid names).

ValueError rather than ``chex.assert_*`` (AssertionError, with chex's own wording): callers and
tests rely on the error type and on messages that name the argument's layout.
"""

from __future__ import annotations

from typing import Sequence


def check_choice(name: str, value: str, valid: Sequence[str]) -> None:
    """Raise ValueError if ``value`` is not one of ``valid``, listing the valid names."""
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid names: {', '.join(map(repr, valid))}")


def check_rank(name: str, x, ranks: Sequence[int], what: str) -> None:
    """Raise ValueError if ``x.ndim`` is not in ``ranks``; ``what`` describes the expected layout."""
    if x.ndim not in ranks:
        raise ValueError(f"{name} must be {what}, got shape {tuple(x.shape)}")


def check_same(name_a: str, shape_a, name_b: str, shape_b, what: str) -> None:
    """Raise ValueError naming both arguments and shapes if ``shape_a != shape_b``."""
    if tuple(shape_a) != tuple(shape_b):
        raise ValueError(
            f"{what}: {name_a} has shape {tuple(shape_a)} but {name_b} has shape {tuple(shape_b)}"
        )
