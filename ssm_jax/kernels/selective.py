"""Selective (input-dependent, Mamba-style) diagonal scan."""

from __future__ import annotations

import jax.numpy as jnp

from ssm_jax.kernels._checks import check_rank, check_same
from ssm_jax.kernels.scan import linear_recurrence


def selective_scan(u, delta, A, B, C, *, method: str = "auto", h0=None):
    """Time-varying diagonal SSM with ZOH on A and Euler on B (the selective-SSM recipe).

    ``x[t] = exp(delta[t, :, None] * A) * x[t-1] + delta[t, :, None] * B[t][None, :] * u[t, :, None]``,
    ``y[t, d] = sum_n C[t, n] * x[t, d, n]``, ``x[-1] = h0`` (zeros if None). No D term.

    Args:
      u: (L, D) real input.
      delta: (L, D) or (L, 1) positive step sizes.
      A: (D, N) real state matrix (diagonal per channel).
      B: (L, N) input-dependent input weights.
      C: (L, N) input-dependent output weights.
      method: scan backend of :func:`linear_recurrence`.
      h0: (D, N) initial state or None.

    Returns:
      y: (L, D).
    """
    u, delta, A, B, C = map(jnp.asarray, (u, delta, A, B, C))
    check_rank("u", u, (2,), "(L, D)")
    check_rank("A", A, (2,), "(D, N)")
    L, D = u.shape
    N = A.shape[1]
    check_same("A[:, 0]", A.shape[:1], "u[0]", (D,), "channel count D")
    if delta.shape not in ((L, D), (L, 1)):
        raise ValueError(f"delta must be (L, D) = {(L, D)} or (L, 1), got shape {delta.shape}")
    check_same("B", B.shape, "(L, N)", (L, N), "B must be (L, N)")
    check_same("C", C.shape, "(L, N)", (L, N), "C must be (L, N)")
    dt = delta[:, :, None]  # (L, D or 1, 1)
    a = jnp.exp(dt * A[None])  # (L, D, N)
    b = dt * B[:, None, :] * u[:, :, None]  # (L, D, N)
    x = linear_recurrence(a, b, h0, method=method)  # (L, D, N)
    return jnp.einsum("ldn,ln->ld", x, C)
