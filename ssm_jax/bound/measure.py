"""The generalization measure tau of one SSM layer (paper 1, sections 3.3-3.4).

The paper's model predicts the output at the final time, ``y(T) = sum_s k[T - s] u(s)`` with
``T = L - 1``; its bound depends on the kernel and the input statistics through

    tau = ( sum_s |k[L-1-s]| std[s] + |sum_s k[L-1-s] mean[s]| ) ** 2        ("paper")

and the tighter variant, with the full time covariance of the input in place of its diagonal,

    tau = ( sqrt(k^T Cov k) + |k^T mean| ) ** 2                               ("covariance")

where ``k[s] = K[L-1-s]`` is the time-reversed kernel. ``sqrt(k^T Cov k) <= sum_s |k| std``
(Cauchy-Schwarz), so "covariance" <= "paper". ``k^T Cov k`` is the batch variance of the
final-step output, so no L x L matrix is formed, but it needs the batch, not only (mean, std).

Kernels:
  * SISO layers (S4D): ``K (H, L)``, one kernel per channel; input statistics (L, H).
  * MIMO layers (S5): ``K (H_out, H_in, L)``, ``y[t, o] = sum_i sum_{s<=t} K[o, i, t-s] u[s, i]``;
    input statistics (L, H_in). The measure is per output channel ``o``: the paper's bound for
    ``y_o(T) = sum_i (k_oi * u_i)(T)``, with the triangle inequality over the input channels,
    ``tau[o] = (sum_i sum_s |K[o,i,L-1-s]| std[s,i] + |sum_i sum_s K[o,i,L-1-s] mean[s,i]|)^2``.
  * Bidirectional layers: see :func:`final_time_kernel`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ssm_jax.bound.statistics import input_statistics, safe_sqrt
from ssm_jax.kernels._checks import check_choice, check_rank

MEASURES = ("paper", "covariance")


def _check_kernel(K):
    check_rank("K", K, (2, 3), "(H, L) (SISO) or (H_out, H_in, L) (MIMO)")


def _input_shape(K):
    """(L, H_in) that the statistics (or each sequence of the batch) must have for kernel K."""
    return (K.shape[-1], K.shape[-2] if K.ndim == 3 else K.shape[0])


def _check_stats(K, name, a):
    """``a`` must be (L, H_in) for kernel ``K``; the error names both shapes."""
    if a.shape != _input_shape(K):
        raise ValueError(f"K has shape {tuple(K.shape)} but {name} has shape {tuple(a.shape)}: "
                         f"{name} must be (L, H_in) = {_input_shape(K)}")


def _check_batch(K, x):
    """``x`` must be (batch, L, H_in) for kernel ``K``; the error names both shapes."""
    if x.ndim != 3 or x.shape[1:] != _input_shape(K):
        raise ValueError(f"K has shape {tuple(K.shape)} but x has shape {tuple(x.shape)}: "
                         f"x must be (batch, L, H_in) with (L, H_in) = {_input_shape(K)}")


def _final_output(K, x):
    """``sum_s K[..., L-1-s] x[..., s, :]`` for a reversed-time contraction.

    ``K (H, L)`` with ``x (..., L, H)`` -> ``(..., H)``; ``K (H_out, H_in, L)`` with
    ``x (..., L, H_in)`` -> ``(..., H_out)``.
    """
    k = K[..., ::-1]  # k[..., s] = K[..., L-1-s]
    if K.ndim == 2:
        return jnp.einsum("hs,...sh->...h", k, x)
    return jnp.einsum("ois,...si->...o", k, x)


def final_time_kernel(K, K_rev=None):
    """Kernel of the final-time output of a (possibly bidirectional) layer.

    A bidirectional layer adds the backward direction run on the reversed sequence, whose
    output at time t is ``sum_{r >= t} K_rev[..., r - t] u[r]``; at the final time
    ``T = L - 1`` it sees only ``u[L-1]``, at lag 0. So
    ``y(T) = sum_s K[..., T-s] u[s] + K_rev[..., 0] u[T]``: one causal kernel with
    ``K[..., 0] + K_rev[..., 0]`` at lag 0 and ``K`` elsewhere. The measure of a bidirectional
    layer is the measure of this kernel (the paper's bound for the layer's final-time output).
    It is linear in the output matrices of both directions, so scaling both scales tau by the
    square.

    Args:
      K: (H, L) or (H_out, H_in, L) float, forward kernel.
      K_rev: None or an array of the same shape, backward kernel.

    Returns:
      Array of the shape of ``K``.
    """
    K = jnp.asarray(K)
    if K_rev is None:
        return K
    K_rev = jnp.asarray(K_rev)
    if K_rev.shape != K.shape:
        raise ValueError(f"K has shape {tuple(K.shape)} but K_rev has shape {tuple(K_rev.shape)}; "
                         "they must match")
    return K.at[..., 0].add(K_rev[..., 0])


def generalization_measure(K, mean, std, *, measure: str = "paper"):
    """The paper's measure tau from the kernel and the input mean and std.

    ``tau[h] = (sum_s |K[h, L-1-s]| std[s, h] + |sum_s K[h, L-1-s] mean[s, h]|) ** 2``. For a
    MIMO kernel, per output channel o: ``tau[o] = (sum_i sum_s |K[o,i,L-1-s]| std[s,i] +
    |sum_i sum_s K[o,i,L-1-s] mean[s,i]|) ** 2``, the paper's bound applied to the output
    ``y_o(T) = sum_i (k_oi * u_i)(T)`` with the triangle inequality over input channels i.

    Args:
      K: (H, L) float (SISO) or (H_out, H_in, L) float (MIMO).
      mean: (L, H_in) float, input mean per time step and channel (H_in = H for SISO).
      std: (L, H_in) float, input standard deviation per time step and channel.
      measure: "paper"; "covariance" needs the batch: use :func:`batch_measure`.

    Returns:
      tau: (H,) or (H_out,) float.
    """
    check_choice("measure", measure, MEASURES)
    if measure != "paper":
        raise ValueError(f"measure {measure!r} needs the batch, not only (mean, std): "
                         f"use batch_measure(K, x, measure={measure!r})")
    K, mean, std = map(jnp.asarray, (K, mean, std))
    _check_kernel(K)
    _check_stats(K, "mean", mean)
    _check_stats(K, "std", std)
    spread = _final_output(jnp.abs(K), std)  # sum |k| std
    centre = _final_output(K, mean)  # k^T mean
    return (spread + jnp.abs(centre)) ** 2


def covariance_measure(K, x):
    """The tighter measure ``(sqrt(k^T Cov k) + |k^T mean|) ** 2`` on a batch.

    ``k^T Cov k`` (Cov the full time covariance of the input; for MIMO kernels, across time
    and input channels) is computed as the batch variance (ddof=0) of the final-step output
    ``y[b] = sum_s K[..., L-1-s] x[b, s]``; ``k^T mean`` is its batch mean.

    Args:
      K: (H, L) float (SISO) or (H_out, H_in, L) float (MIMO).
      x: (batch, L, H_in) float.

    Returns:
      tau: (H,) or (H_out,) float.
    """
    K, x = jnp.asarray(K), jnp.asarray(x)
    _check_kernel(K)
    _check_batch(K, x)
    y = _final_output(K, x)  # (batch, H_out)
    centre = jnp.mean(y, axis=0)
    var = jnp.mean((y - centre) ** 2, axis=0)
    return (safe_sqrt(var) + jnp.abs(centre)) ** 2


def batch_measure(K, x, *, measure: str = "paper", stop_gradient_stats: bool = True):
    """The measure of a kernel on the batch ``x`` of its inputs, by name.

    Args:
      K: (H, L) float (SISO) or (H_out, H_in, L) float (MIMO).
      x: (batch, L, H_in) float, the layer's input.
      measure: one of :data:`MEASURES`.
      stop_gradient_stats: treat the input statistics as constants (``stop_gradient`` on
        ``x``); the gradient then flows through ``K`` only.

    Returns:
      tau: (H,) or (H_out,) float.
    """
    check_choice("measure", measure, MEASURES)
    x = jnp.asarray(x)
    if stop_gradient_stats:
        x = jax.lax.stop_gradient(x)
    if measure == "covariance":
        return covariance_measure(K, x)
    K = jnp.asarray(K)
    _check_kernel(K)
    _check_batch(K, x)
    return generalization_measure(K, *input_statistics(x))
