"""Argument checks shared by the kernels, the layers, the model and ``ssm_jax.bound``: raise a
one-line ValueError before any compute, naming the argument and its shape (or the valid names).

The shape, rank and dtype tests are chex's (``chex.assert_rank``, ``chex.assert_shape``,
``chex.assert_type``); their AssertionError becomes a ValueError whose message names the
argument's layout in the notation of the docstrings, which callers and tests rely on.
"""

from __future__ import annotations

from typing import Sequence

import chex


def check_choice(name: str, value: str, valid: Sequence[str]) -> None:
    """Raise ValueError if ``value`` is not one of ``valid``, listing the valid names."""
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid names: {', '.join(map(repr, valid))}")


def check_rank(name: str, x, ranks: Sequence[int], what: str) -> None:
    """Raise ValueError if ``x.ndim`` is not in ``ranks``; ``what`` describes the expected layout."""
    try:
        chex.assert_rank(x, set(ranks))
    except AssertionError:
        raise ValueError(f"{name} must be {what}, got shape {tuple(x.shape)}") from None


def check_same(name_a: str, shape_a, name_b: str, shape_b, what: str) -> None:
    """Raise ValueError naming both arguments and shapes if ``shape_a != shape_b``."""
    try:
        chex.assert_shape(_Shaped(shape_a), tuple(shape_b))
    except AssertionError:
        raise ValueError(
            f"{what}: {name_a} has shape {tuple(shape_a)} but {name_b} has shape {tuple(shape_b)}"
        ) from None


def check_floating(name: str, x) -> None:
    """Raise ValueError if ``x`` is not a floating-point (real) array."""
    try:
        chex.assert_type(x, float)
    except AssertionError:
        raise ValueError(f"{name} must be a real floating-point array, got dtype {x.dtype}") from None


class _Shaped:
    """A stand-in with only a ``shape``, so chex compares shapes given as tuples."""

    def __init__(self, shape):
        self.shape = tuple(shape)
