"""Initializers: HiPPO-LegS, its normal part's eigenbasis (HiPPO-N), S4D-Lin/Inv/Real, step sizes.

These run once at parameter creation, in NumPy float64 for accuracy (the eigendecomposition of
HiPPO-N is ill-conditioned in float32), and return NumPy arrays.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ssm_jax.kernels.checks import check_choice

LAMBDA_INITS = ("legs", "lin", "inv", "real")


def hippo_legs(N: int):
    """HiPPO-LegS matrices.

    Returns:
      A: (N, N) float64, ``A[n, k] = -sqrt(2n+1) sqrt(2k+1)`` (n > k), ``-(n+1)`` (n = k), 0 (n < k).
      B: (N,) float64, ``B[n] = sqrt(2n+1)``.
    """
    q = np.sqrt(2 * np.arange(N) + 1.0)
    A = -np.tril(np.outer(q, q), -1) - np.diag(np.arange(N) + 1.0)
    return A, q.copy()


def hippo_normal(N: int):
    """Normal part of HiPPO-LegS: ``S = A + P P^T`` with ``P[n] = sqrt(n + 1/2)``.

    ``S = -I/2 + (skew-symmetric)``, so its eigenvalues have real part exactly -1/2.

    Returns:
      S: (N, N) float64.
    """
    A, _ = hippo_legs(N)
    P = np.sqrt(np.arange(N) + 0.5)
    return A + np.outer(P, P)


def hippo_n(N: int, conj_sym: bool = True):
    """Eigen-decomposition of the HiPPO-LegS normal part (S4D-LegS and S5's initialization).

    The skew-symmetric part ``S + I/2`` is diagonalized through the Hermitian matrix
    ``-i (S + I/2)``, which gives exact real parts -1/2 and a unitary eigenbasis.

    Args:
      N: state size.
      conj_sym: keep one eigenvalue of each conjugate pair (``N // 2``, positive imaginary
        part, sorted by imaginary part); requires even N.

    Returns:
      Lambda: (N,) or (N // 2,) complex128 eigenvalues.
      V: (N, N) or (N, N // 2) complex128 eigenvectors, ``S = V diag(Lambda) V^H`` (full set).
    """
    if N < 1:
        raise ValueError(f"N must be >= 1, got {N}")
    S = hippo_normal(N)
    skew = S + 0.5 * np.eye(N)
    w, V = np.linalg.eigh(-1j * skew)  # skew = i * (-i skew): eigenvalues i*w
    Lambda = -0.5 + 1j * w
    order = np.argsort(w)
    Lambda, V = Lambda[order], V[:, order]
    if conj_sym:
        if N % 2:
            raise ValueError(f"conj_sym needs an even state size N, got N={N}")
        keep = slice(N // 2, N)  # positive imaginary parts (w sorted ascending, symmetric)
        Lambda, V = Lambda[keep], V[:, keep]
    return Lambda, V


def s4d_lin(n: int):
    """S4D-Lin: ``Lambda[k] = -1/2 + i pi k``, k = 0..n-1. Returns (n,) complex128."""
    return -0.5 + 1j * np.pi * np.arange(n)


def s4d_inv(n: int, N: int | None = None):
    """S4D-Inv: ``Lambda[k] = -1/2 + i (N/pi) (N/(2k+1) - 1)`` with N = 2n by default.

    Returns (n,) complex128.
    """
    N = 2 * n if N is None else N
    k = np.arange(n)
    return -0.5 + 1j * (N / np.pi) * (N / (2 * k + 1) - 1)


def s4d_real(n: int):
    """S4D-Real: ``Lambda[k] = -(k+1)``. Returns (n,) complex128 with zero imaginary part."""
    return -(np.arange(n) + 1.0) + 0j


def init_Lambda(name: str, n: int):
    """Diagonal eigenvalue initialization by name.

    Args:
      name: "legs" (HiPPO-N of size 2n, conjugate-symmetric half), "lin", "inv" or "real".
      n: number of stored (complex) modes.

    Returns:
      (n,) complex128.
    """
    check_choice("Lambda init", name, LAMBDA_INITS)
    if name == "legs":
        return hippo_n(2 * n, conj_sym=True)[0]
    return {"lin": s4d_lin, "inv": s4d_inv, "real": s4d_real}[name](n)


def log_step_uniform(key, shape, dt_min: float = 1e-3, dt_max: float = 1e-1, dtype=jnp.float32):
    """``log(step)`` with ``step`` log-uniform in ``[dt_min, dt_max]``.

    Args:
      key: PRNG key.
      shape: output shape, e.g. (H,) for one step per channel.

    Returns:
      log_step: ``shape`` array, uniform in ``[log dt_min, log dt_max]``.
    """
    if not 0 < dt_min <= dt_max:
        raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
    return jax.random.uniform(key, shape, dtype, minval=np.log(dt_min), maxval=np.log(dt_max))
