"""Paper 2 (Liu & Li, *Autocorrelation Matters*): the timescale from the input autocorrelation
and the Gram matrix of the SSM features.

* :func:`top_eigenvalue`: lambda_max of the empirical autocorrelation ``R = X^T X / n`` by
  power iteration on the matvec ``R v = X^T (X v) / n``: the ``(L, L)`` matrix is never formed,
  so memory is ``O(n L)`` (the data) plus ``O(L)``.
* :func:`autocorrelation_timescale`: ``Delta = kappa / sqrt(L * lambda_max(R))``, the step
  size that keeps ``E[y_L^2] = rho^T R rho <= lambda_max(R) ||rho||^2`` of order one for a
  zero-real-part SSM (``|rho_l| <= Delta sum_j |c_j B_j|``, so ``||rho||^2 <= L Delta^2 (...)``).
* :func:`feature_matrix`, :func:`feature_gram`, :func:`sample_feature_gram`,
  :func:`condition_number`: the read-out least-squares problem of a diagonal SSM. Its features
  are ``phi_j(x) = sum_s V[j, s] x_s`` with ``V[j, s] = B_bar[j] Lambda_bar[j] ** (L-1-s)``
  (the final state), its Hessian is ``G = E[phi phi^H] = V R V^H``; ``kappa(G)`` sets the
  gradient-descent rate.

The theorem forms are reconstructions (``docs/theory.md#paper-2``, tagged *reconstructed*
there): the constants (kappa) are config values and the claims are checked numerically by
``experiments/paper2``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ssm_jax.kernels.checks import check_rank


def _flat_samples(x, per_channel: bool):
    """``x (n, L)`` or ``(n, L, H)`` -> samples ``(S, n', L)`` (S = H if per_channel else 1)."""
    check_rank("x", x, (2, 3), "(n, L) or (n, L, H)")
    x = jnp.asarray(x)
    if x.ndim == 2:
        if per_channel:
            raise ValueError("per_channel=True needs x of shape (n, L, H), got (n, L) = "
                             f"{tuple(x.shape)}")
        return x[None]
    n, L, H = x.shape
    xt = jnp.moveaxis(x, 2, 0)  # (H, n, L)
    return xt if per_channel else xt.reshape(1, H * n, L)  # channels pooled as extra samples


@functools.partial(jax.jit, static_argnames=("num_iters",))
def _power(X, v0, num_iters: int, tol):
    """lambda_max of ``X^T X / n`` for ``X (n, L)``: power iteration, Rayleigh quotient."""
    n = X.shape[0]
    matvec = lambda v: X.T @ (X @ v) / n

    def body(state):
        i, v, lam, _ = state
        w = matvec(v)
        lam_new = jnp.vdot(v, w).real  # Rayleigh quotient (v has unit norm)
        norm = jnp.linalg.norm(w)
        v_new = jnp.where(norm > 0, w / jnp.where(norm > 0, norm, 1), v)
        change = jnp.abs(lam_new - lam) / jnp.maximum(jnp.abs(lam_new), jnp.finfo(w.dtype).tiny)
        return i + 1, v_new, lam_new, change

    def cond(state):
        i, _, _, change = state
        return (i < num_iters) & (change > tol)

    v0 = v0 / jnp.linalg.norm(v0)
    init = (jnp.array(0), v0, jnp.zeros((), X.dtype), jnp.array(jnp.inf, X.dtype))
    _, v, lam, _ = jax.lax.while_loop(cond, body, init)
    return jnp.vdot(v, matvec(v)).real


def top_eigenvalue(x, per_channel: bool = False, *, num_iters: int = 500, tol: float = 1e-9,
                   seed: int = 0):
    """lambda_max of the empirical autocorrelation ``R = (1/n) sum_i x_i x_i^T`` (not centred).

    Args:
      x: (n, L) or (n, L, H) real sequences. With H channels, the channels are pooled as
        ``n H`` extra samples unless ``per_channel``.
      per_channel: one value per channel (x must be (n, L, H)).
      num_iters: maximum power iterations.
      tol: stop when the Rayleigh quotient changes by less than this (relative).
      seed: seed of the start vector (a fixed random vector: a structured start such as the
        constant vector can be orthogonal to the top eigenvector).

    Returns:
      () float, or (H,) with ``per_channel``.
    """
    samples = _flat_samples(x, per_channel)  # (S, n', L)
    L = samples.shape[-1]
    v0 = jax.random.normal(jax.random.PRNGKey(seed), (L,), samples.dtype) + 1.0 / jnp.sqrt(L)
    lam = jnp.stack([_power(X, v0, num_iters, tol) for X in samples])
    return lam if per_channel else lam[0]


def autocorrelation_timescale(x, kappa: float = 1.0, per_channel: bool = False, **power_kw):
    """The autocorrelation timescale ``Delta = kappa / sqrt(L * lambda_max(R))`` (paper 2).

    ``R = (1/n) sum_i x_i x_i^T`` is the (uncentred) autocorrelation of the sequences, with
    lambda_max from :func:`top_eigenvalue` (power iteration on ``R v = X^T (X v) / n``; the
    ``(L, L)`` matrix is never formed). White input (R = I) gives ``kappa / sqrt(L)``,
    constant-in-time input (R = 1 1^T) gives ``kappa / L``.

    Args:
      x: (n, L) or (n, L, H) real sequences (channels pooled as extra samples unless
        ``per_channel``).
      kappa: the O(1) constant of the rule (a config value).
      per_channel: one timescale per channel, (H,).
      **power_kw: ``num_iters``, ``tol``, ``seed`` of :func:`top_eigenvalue`.

    Returns:
      () float, or (H,) with ``per_channel``.
    """
    if not kappa > 0:
        raise ValueError(f"kappa must be > 0, got {kappa}")
    lam = top_eigenvalue(x, per_channel, **power_kw)  # checks the shape of x
    L = jnp.shape(x)[1]
    return kappa / jnp.sqrt(L * lam)


def _check_modes(Lambda_bar, B_bar):
    check_rank("Lambda_bar", Lambda_bar, (1,), "(m,)")
    check_rank("B_bar", B_bar, (1,), "(m,)")
    if jnp.shape(Lambda_bar) != jnp.shape(B_bar):
        raise ValueError(f"Lambda_bar {jnp.shape(Lambda_bar)} and B_bar {jnp.shape(B_bar)} must "
                         "have the same shape (m,)")


def feature_matrix(Lambda_bar, B_bar, length: int):
    """``V[j, s] = B_bar[j] * Lambda_bar[j] ** (L-1-s)``: the final state of the SSM is
    ``h_L = V x`` for an input ``x (L,)``.

    Args:
      Lambda_bar: (m,) complex, discrete eigenvalues.
      B_bar: (m,) complex, discrete input weights.
      length: L.

    Returns:
      (m, L) complex.
    """
    _check_modes(Lambda_bar, B_bar)
    Lambda_bar = jnp.asarray(Lambda_bar, jnp.result_type(Lambda_bar, jnp.complex64))
    powers = (length - 1 - jnp.arange(length)).astype(Lambda_bar.real.dtype)  # (L,)
    log_l = jnp.log(Lambda_bar)[:, None]
    # Real and imaginary parts scaled separately (Lambda_bar = 0 would give -inf * 0 = nan).
    V = jnp.exp(jax.lax.complex(log_l.real * powers, log_l.imag * powers))
    V = jnp.where(powers == 0, jnp.ones_like(V), V)
    return jnp.asarray(B_bar, V.dtype)[:, None] * V


def feature_gram(Lambda_bar, B_bar, R):
    """Gram matrix ``G = V R V^H`` of the SSM features (:func:`feature_matrix`).

    Args:
      Lambda_bar, B_bar: (m,) complex.
      R: (L, L) real symmetric autocorrelation ``E[x x^T]`` (the identity for white input).

    Returns:
      (m, m) complex Hermitian, ``G[j, k] = E[phi_j conj(phi_k)]``. On the DFT grid
      ``Lambda_bar_j = exp(2 pi i j / L)`` with ``B_bar = 1`` and ``R = I``, ``G = L I``.
    """
    check_rank("R", R, (2,), "(L, L)")
    V = feature_matrix(Lambda_bar, B_bar, R.shape[0])
    return V @ jnp.asarray(R, V.dtype) @ V.conj().T


def sample_features(Lambda_bar, B_bar, x):
    """Features ``phi_i = V x_i`` of samples ``x (n, L)``: (n, m) complex."""
    check_rank("x", x, (2,), "(n, L)")
    V = feature_matrix(Lambda_bar, B_bar, x.shape[1])
    return jnp.asarray(x, V.dtype) @ V.T


def sample_feature_gram(Lambda_bar, B_bar, x):
    """Empirical Gram matrix ``(1/n) sum_i phi_i phi_i^H`` from samples, without forming R.

    Args:
      Lambda_bar, B_bar: (m,) complex.
      x: (n, L) real sequences.

    Returns:
      (m, m) complex Hermitian; equals ``feature_gram(Lambda_bar, B_bar, X^T X / n)``.
    """
    phi = sample_features(Lambda_bar, B_bar, x)  # (n, m)
    return phi.T @ phi.conj() / x.shape[0]


def condition_number(G):
    """``sigma_max(G) / sigma_min(G)`` of a Gram matrix (inf when it is singular).

    Args:
      G: (m, m) Hermitian positive semi-definite.

    Returns:
      () float.
    """
    check_rank("G", G, (2,), "(m, m)")
    s = jnp.linalg.svd(G, compute_uv=False)
    return jnp.where(s[-1] > 0, s[0] / jnp.where(s[-1] > 0, s[-1], 1), jnp.inf)


__all__ = ["autocorrelation_timescale", "condition_number", "feature_gram", "feature_matrix",
           "sample_feature_gram", "sample_features", "top_eigenvalue"]
