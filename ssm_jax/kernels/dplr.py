"""S4's diagonal-plus-low-rank (DPLR) SSM: kernel by the Cauchy kernel and the Woodbury
identity at the roots of unity, the HiPPO-LegS normal-plus-low-rank (NPLR) initialization, and
the dense bilinear discretization for the recurrent / step form.

Per channel h (N stored complex states, one of each conjugate pair, read out as 2 Re):

    A = diag(Lambda) - P P^H,   Abar = (I - step/2 A)^{-1} (I + step/2 A),
    Bbar = (I - step/2 A)^{-1} step B,   K[l] = 2 Re(C Abar^l Bbar),  l = 0..L-1.

The kernel's generating function at ``omega`` is ``sum_l C Abar^l Bbar omega^l =
Ct (I - Abar omega)^{-1} Bbar`` with ``Ct = C (I - Abar^L)`` when ``omega^L = 1``. With
``a = 1 - omega``, ``b = (1 + omega) step / 2``,

    (I - Abar omega)^{-1} Bbar = step (a I - b A)^{-1} B = step (D + b P P^H)^{-1} B,
    D = diag(a - b Lambda),

and the Woodbury identity reduces the inverse to four Cauchy-type sums
``k_xy = sum_n x_n y_n / (a - b Lambda_n)``:

    Khat(omega) = step (k_CB - b k_CP k_PB / (1 + b k_PP)).

Evaluated at the L roots of unity ``omega_k = exp(-2 pi i k / L)`` this is the DFT of the
kernel, so ``K = 2 Re(ifft(Khat))``: ``O(L N)`` per channel and no power ``Abar^l`` is formed.
(``a - b Lambda`` is written without dividing by ``1 + omega``, so ``omega = -1`` is exact.)
S4 parameterizes ``Ct`` directly (``c_tilde=True``); from ``C``, ``Ct`` needs the one matrix
power ``Abar^L`` (by repeated squaring).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ssm_jax.kernels.checks import check_rank, check_same
from ssm_jax.kernels.init import hippo_legs, hippo_n


def _check(Lambda, P, B, C, step):
    check_rank("Lambda", Lambda, (2,), "(H, N)")
    for name, a in (("P", P), ("B", B), ("C", C)):
        check_same("Lambda", Lambda.shape, name, a.shape, "DPLR parameters must match")
    check_rank("step", step, (1,), "(H,)")
    check_same("step", step.shape, "Lambda[:, 0]", Lambda.shape[:1], "one step size per channel")


def dplr_matrices(Lambda, P, B, step):
    """Dense bilinear discretization of ``A = diag(Lambda) - P P^H`` per channel.

    Args:
      Lambda, P, B: (H, N) complex.
      step: (H,) positive.

    Returns:
      (Abar (H, N, N), Bbar (H, N)) complex.
    """
    Lambda, P, B, step = map(jnp.asarray, (Lambda, P, B, step))
    N = Lambda.shape[-1]
    eye = jnp.eye(N, dtype=Lambda.dtype)
    A = eye * Lambda[:, None, :] - P[:, :, None] * jnp.conj(P)[:, None, :]  # (H, N, N)
    half = (step / 2)[:, None, None] * A
    left = eye - half
    Abar = jnp.linalg.solve(left, eye + half)
    Bbar = jnp.linalg.solve(left, (step[:, None] * B)[..., None])[..., 0]
    return Abar, Bbar


def c_tilde(C, Abar, length: int):
    """``Ct = C (I - Abar^L)`` (H, N): the output map of the truncated generating function."""
    power = jnp.linalg.matrix_power(Abar, length)  # (H, N, N), repeated squaring
    return C - jnp.einsum("hn,hnm->hm", C, power)


def c_from_tilde(Ct, Abar, length: int):
    """Inverse of :func:`c_tilde`: ``C = Ct (I - Abar^L)^{-1}`` (H, N)."""
    N = Abar.shape[-1]
    M = jnp.eye(N, dtype=Abar.dtype) - jnp.linalg.matrix_power(Abar, length)
    # C M = Ct  <=>  M^T C^T = Ct^T
    return jnp.linalg.solve(jnp.swapaxes(M, -1, -2), Ct[..., None])[..., 0]


def dplr_kernel(Lambda, P, B, C, step, length: int, *, c_tilde_given: bool = False):
    """Convolution kernels of H DPLR SSMs (S4), by Cauchy sums and Woodbury at the roots of unity.

    ``K[h, l] = 2 Re(C[h] Abar^l Bbar)`` for ``A = diag(Lambda[h]) - P[h] P[h]^H`` discretized
    bilinearly with ``step[h]`` (see the module docstring).

    Args:
      Lambda: (H, N) complex, diagonal part of A.
      P: (H, N) complex, low-rank part (rank 1).
      B: (H, N) complex.
      C: (H, N) complex output map (``Ct = C (I - Abar^L)`` if ``c_tilde_given``).
      step: (H,) positive step sizes.
      length: L, number of taps.
      c_tilde_given: ``C`` is already ``Ct`` (S4's parameterization; no matrix power).

    Returns:
      K: (H, L) real.
    """
    Lambda, P, B, C, step = map(jnp.asarray, (Lambda, P, B, C, step))
    _check(Lambda, P, B, C, step)
    dtype = jnp.result_type(Lambda, P, B, C, jnp.complex64)
    Lambda, P, B, C = (a.astype(dtype) for a in (Lambda, P, B, C))
    step = step.astype(jnp.finfo(dtype).dtype)
    if not c_tilde_given:
        Abar, _ = dplr_matrices(Lambda, P, B, step)
        C = c_tilde(C, Abar, length)
    omega = jnp.exp(-2j * np.pi * jnp.arange(length) / length).astype(dtype)  # (L,)
    a = 1 - omega
    b = (1 + omega)[None, :] * (step[:, None] / 2)  # (H, L)
    r = 1 / (a[None, :, None] - b[..., None] * Lambda[:, None, :])  # (H, L, N) Cauchy terms
    Pc = jnp.conj(P)
    k_cb = jnp.einsum("hln,hn->hl", r, C * B)
    k_cp = jnp.einsum("hln,hn->hl", r, C * P)
    k_pb = jnp.einsum("hln,hn->hl", r, Pc * B)
    k_pp = jnp.einsum("hln,hn->hl", r, Pc * P)
    Khat = step[:, None] * (k_cb - b * k_cp * k_pb / (1 + b * k_pp))  # (H, L)
    return 2 * jnp.fft.ifft(Khat, axis=-1).real


def hippo_nplr(N: int):
    """HiPPO-LegS in normal-plus-low-rank form, in the eigenbasis of its normal part.

    ``A_LegS = S - p p^T`` with ``p[n] = sqrt(n + 1/2)`` and ``S = V diag(Lambda) V^H`` normal
    (:func:`~ssm_jax.kernels.init.hippo_n`), so ``V^H A_LegS V = diag(Lambda) - P P^H`` with
    ``P = V^H p`` and the input map ``B = V^H b`` (``b[n] = sqrt(2n+1)``). One eigenvalue of each
    conjugate pair is kept (N/2 states, read out as 2 Re, as in S4).

    Args:
      N: state size of the full HiPPO matrix (even).

    Returns:
      (Lambda, P, B): each (N // 2,) complex128.
    """
    Lambda, V = hippo_n(N, conj_sym=True)  # V: (N, N/2)
    _, b = hippo_legs(N)
    p = np.sqrt(np.arange(N) + 0.5)
    return Lambda, V.conj().T @ p, V.conj().T @ b


__all__ = ["c_from_tilde", "c_tilde", "dplr_kernel", "dplr_matrices", "hippo_nplr"]
