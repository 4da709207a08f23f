"""Diagonal linear recurrences h[t] = a[t] * h[t-1] + b[t]: one entry point, two backends."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from ssm_jax.kernels.checks import check_choice

SCAN_METHODS = ("associative", "sequential", "auto")

# lax.scan unroll factor for the sequential backend (fewer loop iterations, same result).
_UNROLL = 8


def auto_method() -> str:
    """The backend that ``method="auto"`` runs on the current default JAX backend.

    Measured with ``benchmarks/scan.py``: on CPU the sequential ``lax.scan`` is faster than
    ``lax.associative_scan`` (and compiles several times faster); on accelerators the parallel
    associative scan is used (log-depth over L), which is the standard choice for GPU/TPU.
    """
    return "sequential" if jax.default_backend() == "cpu" else "associative"


def combine_affine(left, right):
    """Associative operator on (a, b) pairs of affine maps ``h -> a h + b``: apply ``left``
    first, then ``right`` (the operator of ``lax.associative_scan`` for every linear
    recurrence of the package, also the selective scan's)."""
    a_l, b_l = left
    a_r, b_r = right
    return a_r * a_l, a_r * b_l + b_r


def accumulation_dtype(dtype):
    """The dtype a recurrence over ``dtype`` values accumulates in: low-precision floats
    accumulate in float32 (complex64 for complex)."""
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return jnp.promote_types(dtype, jnp.complex64)
    return jnp.promote_types(dtype, jnp.float32)


def _check_args(a, b, h0):
    """``a`` must broadcast to ``b (L, ...)`` and ``h0`` match ``b.shape[1:]`` (ValueError)."""
    if b.ndim < 1:
        raise ValueError(f"b must have a leading time axis (L, ...), got shape {b.shape}")
    try:
        full = jnp.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        full = None
    if full != b.shape:
        raise ValueError(f"a with shape {a.shape} does not broadcast to b with shape {b.shape}")
    if h0 is not None:
        try:
            h0_ok = jnp.broadcast_shapes(h0.shape, b.shape[1:]) == b.shape[1:]
        except ValueError:
            h0_ok = False
        if not h0_ok:
            raise ValueError(
                f"h0 with shape {h0.shape} does not match the state shape b.shape[1:] = {b.shape[1:]}"
            )


def associative_scan(a, b, *, reverse: bool = False):
    """``h[t] = a[t] * h[t-1] + b[t]`` from ``h[-1] = 0`` by ``lax.associative_scan``
    (log-depth over L). ``a`` broadcasts to ``b (L, ...)``."""
    a_full = jnp.broadcast_to(a, b.shape)
    return lax.associative_scan(combine_affine, (a_full, b), reverse=reverse, axis=0)[1]


def sequential_scan(a, b, *, reverse: bool = False):
    """``h[t] = a[t] * h[t-1] + b[t]`` from ``h[-1] = 0`` by ``lax.scan`` (one step per time
    step, unrolled by 8). ``a`` broadcasts to ``b (L, ...)``; a time-invariant ``a`` (no time
    axis, or a time axis of size 1) is not broadcast over L."""
    if a.ndim < b.ndim or a.shape[0] == 1:
        a_const = a[0] if a.ndim == b.ndim else a

        def step(h, b_t):
            h = a_const * h + b_t
            return h, h

        xs = b
    else:
        def step(h, ab_t):
            h = ab_t[0] * h + ab_t[1]
            return h, h

        xs = (a, b)
    init = jnp.zeros(b.shape[1:], b.dtype)
    return lax.scan(step, init, xs, reverse=reverse, unroll=min(_UNROLL, max(b.shape[0], 1)))[1]


BACKENDS = {"associative": associative_scan, "sequential": sequential_scan}


def linear_recurrence(a, b, h0=None, *, reverse: bool = False, method: str = "auto"):
    """Run ``h[t] = a[t] * h[t-1] + b[t]`` over the leading (time) axis.

    Args:
      a: broadcastable to ``b.shape``, real or complex; time-invariant if it has no time axis
         (e.g. ``(N,)`` against ``b (L, N)``) or a time axis of size 1.
      b: (L, ...) real or complex.
      h0: ``b.shape[1:]`` initial state ``h[-1]`` (``h[L]`` if ``reverse``); zeros if None.
      reverse: run from t = L-1 down to 0: ``h[t] = a[t] * h[t+1] + b[t]``.
      method: "associative" (:func:`associative_scan`), "sequential" (:func:`sequential_scan`)
        or "auto" (see :func:`auto_method`).

    Returns:
      h: (L, ...) states, dtype ``result_type(a, b, h0)``; computed in at least float32.
    """
    check_choice("scan method", method, SCAN_METHODS)
    a, b = jnp.asarray(a), jnp.asarray(b)
    h0 = None if h0 is None else jnp.asarray(h0)
    _check_args(a, b, h0)
    backend = BACKENDS[auto_method() if method == "auto" else method]
    out_dtype = jnp.result_type(a, b) if h0 is None else jnp.result_type(a, b, h0)
    acc = accumulation_dtype(out_dtype)
    a, b = a.astype(acc), b.astype(acc)
    if h0 is not None:  # fold the initial state into the first step that sees it
        t0 = -1 if reverse else 0
        a_t0 = a[t0] if a.ndim == b.ndim else a
        b = b.at[t0].add(a_t0 * h0.astype(acc))
    return backend(a, b, reverse=reverse).astype(out_dtype)
