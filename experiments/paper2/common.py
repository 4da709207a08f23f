"""Shared pieces of the paper-2 experiments (NumPy float64): stationary input families given by
their autocovariance, Toeplitz products by FFT, exact lambda_max, single-layer SISO kernels.

A stationary family with autocovariance ``gamma(k)`` (``gamma(0) = 1``) has the Toeplitz
autocorrelation ``R[s, t] = gamma(|s - t|)``; ``E[y_L^2] = rho^T R rho`` of an SSM with kernel
``rho`` is ``sum_k gamma(|k|) a(k)`` with ``a`` the autocorrelation of ``rho`` (one FFT), and
``R v`` is a circulant-embedded FFT product, so nothing is ``O(L^2)``.
"""

from __future__ import annotations

import numpy as np

from ssm_jax.kernels.init import hippo_n, s4d_inv


def autocovariance(family: str, L: int) -> np.ndarray:
    """``gamma(k)``, k = 0..L-1, of an input family (unit variance).

    Families: ``white``, ``ar1_<phi>`` (``phi^k``), ``powerlaw_<alpha>`` (``(1+k)^-alpha``,
    convex and decreasing, hence a valid autocovariance by Polya's criterion), ``constant``
    (``x_t = c`` for all t: ``gamma = 1``).
    """
    k = np.arange(L, dtype=float)
    if family == "white":
        return (k == 0).astype(float)
    if family == "constant":
        return np.ones(L)
    kind, _, value = family.partition("_")
    if kind == "ar1":
        return float(value) ** k
    if kind == "powerlaw":
        return (1.0 + k) ** (-float(value))
    raise ValueError(f"unknown input family {family!r}; valid: white, constant, ar1_<phi>, "
                     "powerlaw_<alpha>")


def predicted_delta_exponent(family: str) -> float:
    """Exponent of the admissible Delta ~ L^p: -1/2 (white, summable), -(2-alpha)/2
    (power law), -1 (constant)."""
    if family in ("white",) or family.startswith("ar1_"):
        return -0.5
    if family == "constant":
        return -1.0
    if family.startswith("powerlaw_"):
        return -(2 - float(family.partition("_")[2])) / 2
    raise ValueError(family)


def toeplitz_matvec(gamma: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``R v`` with ``R[s, t] = gamma(|s-t|)``: v (L,) or (L, k), by a 2L circulant FFT."""
    L = gamma.shape[0]
    col = np.concatenate([gamma, [0.0], gamma[:0:-1]])  # first column of the circulant (2L,)
    f = np.fft.rfft(col)
    V = v.reshape(L, -1)
    out = np.fft.irfft(f[:, None] * np.fft.rfft(V, n=2 * L, axis=0), n=2 * L, axis=0)[:L]
    return out.reshape(v.shape)


def lambda_max(gamma: np.ndarray, iters: int = 2000, tol: float = 1e-12) -> float:
    """Exact lambda_max of the Toeplitz R by power iteration (start: the constant vector,
    close to the Perron vector of these nonnegative R)."""
    v = np.ones_like(gamma) / np.sqrt(len(gamma))
    lam = 0.0
    for _ in range(iters):
        w = toeplitz_matvec(gamma, v)
        new = float(v @ w)
        v = w / np.linalg.norm(w)
        if abs(new - lam) <= tol * abs(new):
            lam = new
            break
        lam = new
    return lam


def quadratic_form(gamma: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """``rho^T R rho`` for rows of ``rho (..., L)``: ``sum_k gamma(|k|) a(k)`` by FFT."""
    L = rho.shape[-1]
    F = np.fft.rfft(rho, n=2 * L, axis=-1)
    a = np.fft.irfft(np.abs(F) ** 2, n=2 * L, axis=-1)[..., :L]  # a(k) = sum_l rho_l rho_{l+k}
    return a[..., 0] * gamma[0] + 2 * a[..., 1:] @ gamma[1:]


def family_modes(family: str, m: int, *, real_part=None, step=None, L=None,
                 cluster_scale: float = 0.1) -> np.ndarray:
    """Continuous eigenvalues ``(m,)`` of an imaginary-part family (as ``init.imag``):
    lin, inv, legs, real (S4D-Real, own real parts), dft (needs step and L), clustered."""
    n = np.arange(m)
    if family == "lin":
        im = np.pi * n
    elif family == "inv":
        im = s4d_inv(m).imag
    elif family == "legs":
        im = hippo_n(2 * m, conj_sym=True)[0].imag
    elif family == "clustered":
        im = cluster_scale * np.pi * n
    elif family == "dft":
        im = 2 * np.pi * n / (L * step)
    elif family == "real":
        return -(n + 1.0) + 0j
    else:
        raise ValueError(f"unknown family {family!r}")
    re = -0.5 if real_part is None else real_part
    return re + 1j * im


def zoh(Lambda: np.ndarray, step: float) -> tuple:
    """ZOH ``(Lambda_bar, B_factor)`` with the ``Lambda = 0`` limit (B_factor = step)."""
    z = Lambda * step
    Lb = np.exp(z)
    small = np.abs(z) < 1e-8
    Bf = np.where(small, step * (1 + z / 2), (Lb - 1) / np.where(small, 1, Lambda))
    return Lb, Bf


def mode_kernels(Lambda: np.ndarray, step: float, L: int) -> np.ndarray:
    """Per-mode real kernels ``rho_j(l) = Re(B_bar_j Lambda_bar_j^l)`` (B = 1): (m, L)."""
    Lb, Bf = zoh(Lambda, step)
    l = np.arange(L)
    return np.real(Bf[:, None] * np.exp(np.outer(np.log(Lb), l)))
