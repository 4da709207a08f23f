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
  * Bidirectional layers: both directions with all their lags, see
    :func:`direction_measures` (:func:`final_time_kernel` is the exact kernel of ``y(T)``,
    where the backward direction enters only at lag 0; kept for reference).

Read-outs (:data:`READOUTS`): ``"last"`` is the formula above; ``"mean"`` measures the time
mean of the output, ``w[s] = (1/L) sum_{j=0}^{L-1-s} K[j]`` in place of ``K[L-1-s]``
(:func:`readout_weights`); padded batches use per-sequence weights
(:func:`readout_measure`). A stack of layers takes one of :data:`STACK_READOUTS`: a read-out
for every layer, or ``"top_mean"`` (:func:`layer_readouts`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ssm_jax.bound.statistics import input_statistics, safe_sqrt
from ssm_jax.kernels.checks import check_choice, check_rank

MEASURES = ("paper", "covariance")
READOUTS = ("last", "mean")
# read-outs of a stack of SSM layers: one of READOUTS for every layer, or "top_mean"
STACK_READOUTS = READOUTS + ("top_mean",)


def layer_readouts(readout: str, count: int) -> tuple:
    """The read-out of each of ``count`` SSM layers (block order) under a stack read-out.

    ``"last"`` / ``"mean"``: that read-out at every layer. ``"top_mean"``: ``"last"`` at every
    layer but the last one, ``"mean"`` there. That is the output each layer hands on in a
    mean-pooled model: a layer below the top passes every time step on, and the next layer's
    final-time output depends on all of them through its own kernel, so the theorem's final-time
    output is the quantity to bound; only the top layer's outputs are averaged over time by the
    pooling, so its measure is the one of the time mean.

    Args:
      readout: one of :data:`STACK_READOUTS`.
      count: number of SSM layers (applications) of the model.

    Returns:
      tuple of ``count`` entries of :data:`READOUTS`.
    """
    check_choice("readout", readout, STACK_READOUTS)
    if readout != "top_mean":
        return (readout,) * count
    return ("last",) * (count - 1) + ("mean",) if count else ()


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


def generalization_measure(K, mean, std, *, measure: str = "paper", readout: str = "last"):
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
      readout: "last" (the formula above, the theorem's output ``y(T)``) or "mean" (the time
        mean of the output, ``w[s] = (1/L) sum_{j=0}^{L-1-s} K[j]`` in place of
        ``K[L-1-s]``: :func:`readout_weights`, :func:`weighted_measure`).

    Returns:
      tau: (H,) or (H_out,) float.
    """
    check_choice("measure", measure, MEASURES)
    check_choice("readout", readout, READOUTS)
    if measure != "paper":
        raise ValueError(f"measure {measure!r} needs the batch, not only (mean, std): "
                         f"use batch_measure(K, x, measure={measure!r})")
    K, mean, std = map(jnp.asarray, (K, mean, std))
    _check_kernel(K)
    _check_stats(K, "mean", mean)
    _check_stats(K, "std", std)
    if readout != "last":
        return weighted_measure(readout_weights(K, readout), mean, std)
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


def batch_measure(K, x, *, measure: str = "paper", stop_gradient_stats: bool = True,
                  readout: str = "last", K_rev=None, lengths=None):
    """The measure of a kernel on the batch ``x`` of its inputs, by name.

    Args:
      K: (H, L) float (SISO) or (H_out, H_in, L) float (MIMO).
      x: (batch, L, H_in) float, the layer's input.
      measure: one of :data:`MEASURES`.
      stop_gradient_stats: treat the input statistics as constants (``stop_gradient`` on
        ``x``); the gradient then flows through ``K`` only.
      readout, K_rev, lengths: the read-out, the backward kernel of a bidirectional layer and
        the valid lengths of a padded batch (:func:`direction_measures`); with any of them
        set, the result is the layer's tau of :func:`direction_measures`.

    Returns:
      tau: (H,) or (H_out,) float.
    """
    check_choice("measure", measure, MEASURES)
    if readout != "last" or K_rev is not None or lengths is not None:
        return direction_measures(K, x, K_rev=K_rev, readout=readout, measure=measure,
                                  lengths=lengths, stop_gradient_stats=stop_gradient_stats)[0]
    x = jnp.asarray(x)
    if stop_gradient_stats:
        x = jax.lax.stop_gradient(x)
    if measure == "covariance":
        return covariance_measure(K, x)
    K = jnp.asarray(K)
    _check_kernel(K)
    _check_batch(K, x)
    return generalization_measure(K, *input_statistics(x))


# ---------------------------------------------------------------------------------------------
# Read-outs: the measure of the output the model actually uses (final time or time mean), for
# one or both directions, and for padded batches.

def readout_weights(K, readout: str = "last", *, reverse: bool = False, lengths=None):
    """Weight ``w[..., s]`` of the input ``u[s]`` in the read-out of one direction's output.

    Forward direction (``y[t] = sum_{s<=t} K[t-s] u[s]``), for a sequence of ``n`` valid steps:
      * ``"last"``: the output at ``t = n-1``: ``w[s] = K[n-1-s]``;
      * ``"mean"``: ``(1/n) sum_{t<n} y[t]``: ``w[s] = (1/n) sum_{j=0}^{n-1-s} K[j]``.
    Backward direction (``y[t] = sum_{r>=t} K[r-t] u[r]``): its own final time is ``t = 0``:
      * ``"last"``: ``w[s] = K[s]``;  ``"mean"``: ``w[s] = (1/n) sum_{j=0}^{s} K[j]``.
    Positions ``s >= n`` get weight 0.

    Args:
      K: (H, L) or (H_out, H_in, L) float kernel.
      readout: one of :data:`READOUTS`.
      reverse: K is the kernel of a backward-in-time direction.
      lengths: None (every sequence has ``n = L``) or (batch,) int valid lengths.

    Returns:
      ``(..., L)`` (the shape of K) without ``lengths``; ``(batch, ..., L)`` with them.
    """
    check_choice("readout", readout, READOUTS)
    K = jnp.asarray(K)
    L = K.shape[-1]
    base = jnp.cumsum(K, axis=-1) if readout == "mean" else K  # base[j]: sum_{i<=j} K[i] or K[j]
    if lengths is None:
        w = base if reverse else base[..., ::-1]
        return w / L if readout == "mean" else w
    n = jnp.asarray(lengths).reshape(-1, 1)  # (batch, 1)
    s = jnp.arange(L)[None, :]  # (1, L)
    idx = jnp.broadcast_to(s, (n.shape[0], L)) if reverse else n - 1 - s  # (batch, L)
    valid = (s < n) & (idx >= 0)
    w = jnp.take(base, jnp.clip(idx, 0, L - 1), axis=-1)  # (..., batch, L)
    w = jnp.moveaxis(w, -2, 0) * valid.reshape((n.shape[0],) + (1,) * (K.ndim - 1) + (L,))
    if readout == "mean":
        w = w / jnp.maximum(n, 1).reshape((n.shape[0],) + (1,) * (K.ndim - 1) + (1,)).astype(w.dtype)
    return w


def weighted_measure(w, mean, std):
    """``tau = (sum_s |w[s]| std[s] + |sum_s w[s] mean[s]|) ** 2`` for read-out weights ``w``.

    Args:
      w: (H, L) (SISO) or (H_out, H_in, L) (MIMO), weights aligned with the input time ``s``
        (:func:`readout_weights`; for ``"last"`` ``w[s] = K[L-1-s]``).
      mean, std: (L, H_in) float input statistics.

    Returns:
      (H,) or (H_out,) float.
    """
    w, mean, std = map(jnp.asarray, (w, mean, std))
    eq = "hs,sh->h" if w.ndim == 2 else "ois,si->o"
    return (jnp.einsum(eq, jnp.abs(w), std) + jnp.abs(jnp.einsum(eq, w, mean))) ** 2


def _products(w, x):
    """Per-sequence contributions ``p[b, s, ...] = w[b, ..., s] * x[b, s, i]`` of every input to
    the read-out: SISO ``w (batch, H, L)`` -> ``(batch, L, H)``; MIMO ``w (batch, O, I, L)`` ->
    ``(batch, L, O, I)``."""
    if w.ndim == 3:
        return jnp.einsum("bhs,bsh->bsh", w, x)
    return jnp.einsum("bois,bsi->bsoi", w, x)


def readout_measure(w, x, *, measure: str = "paper", per_sequence: bool = False):
    """The measure of a read-out with weights ``w`` on the batch ``x`` of the layer's inputs.

    With weights shared by the batch (``w (H, L)`` / ``(H_out, H_in, L)``), "paper" is
    :func:`weighted_measure` of the batch statistics. With one weight vector per sequence
    (``per_sequence=True``, ``w (batch, H, L)`` / ``(batch, H_out, H_in, L)``, e.g. padded
    sequences of different lengths) the read-out is ``y_b = sum_s p[b, s]`` with
    ``p[b, s] = w[b, s] x[b, s]``, and the same argument (``p = mean + std * normalized``, per
    time step) gives ``tau = (sum_s std_b(p[:, s]) + |sum_s mean_b(p[:, s])|) ** 2``: the
    shared-weight formula when all the weights agree. "covariance" uses the batch mean and
    variance of ``y_b`` in both cases.

    Args:
      w: read-out weights as above (:func:`readout_weights`).
      x: (batch, L, H_in) float.
      measure: one of :data:`MEASURES`.
      per_sequence: ``w`` has a leading batch axis.

    Returns:
      (H,) or (H_out,) float.
    """
    check_choice("measure", measure, MEASURES)
    w, x = jnp.asarray(w), jnp.asarray(x)
    siso = w.ndim == (3 if per_sequence else 2)
    if measure == "covariance":
        eq = {(True, True): "bhs,bsh->bh", (True, False): "bois,bsi->bo",
              (False, True): "hs,bsh->bh", (False, False): "ois,bsi->bo"}[per_sequence, siso]
        y = jnp.einsum(eq, w, x)
        centre = jnp.mean(y, axis=0)
        return (safe_sqrt(jnp.mean((y - centre) ** 2, axis=0)) + jnp.abs(centre)) ** 2
    if not per_sequence:
        return weighted_measure(w, *input_statistics(x))
    p = _products(w, x)  # (batch, L, H) or (batch, L, O, I)
    mean, std = input_statistics(p.reshape(p.shape[:2] + (-1,)))
    spread = std.reshape(p.shape[1:]).sum(axis=0)  # (H,) or (O, I)
    centre = mean.reshape(p.shape[1:]).sum(axis=0)
    if not siso:
        spread, centre = spread.sum(-1), centre.sum(-1)
    return (spread + jnp.abs(centre)) ** 2


def direction_measures(K, x, *, K_rev=None, readout: str = "last", measure: str = "paper",
                       lengths=None, stop_gradient_stats: bool = True):
    """tau of a layer's read-out and, per direction, the tau its output map is divided by.

    * One direction: ``tau`` of :func:`readout_weights` of ``K``.
    * Bidirectional, ``"mean"``: the pooled output sums both directions, so
      ``w = w_forward + w_backward`` (all lags of both kernels) and the layer's ``tau`` is the
      measure of ``w``; both output maps are divided by ``sqrt(tau)``.
    * Bidirectional, ``"last"``: each direction is read out at its own final time (the forward
      one at ``t = L-1``, the backward one at ``t = 0``, where it has seen the whole
      sequence), giving ``tau_f`` and ``tau_b``; the layer's ``tau`` is their mean and each
      direction's output map is divided by the square root of its own tau.

    Args:
      K: (H, L) or (H_out, H_in, L) float, forward kernel.
      x: (batch, L, H_in) float, the layer's input (padded positions zero).
      K_rev: None, or the backward kernel (shape of ``K``).
      readout: one of :data:`READOUTS`.
      measure: one of :data:`MEASURES`.
      lengths: None or (batch,) int valid lengths (per-sequence weights, see
        :func:`readout_measure`).
      stop_gradient_stats: ``stop_gradient`` on ``x``.

    Returns:
      ``(tau, {"": tau_forward_scale, "_rev": tau_backward_scale})``, each (H,) or (H_out,);
      the dict has no ``"_rev"`` for one direction.
    """
    check_choice("readout", readout, READOUTS)
    check_choice("measure", measure, MEASURES)
    K, x = jnp.asarray(K), jnp.asarray(x)
    _check_kernel(K)
    _check_batch(K, x)
    if stop_gradient_stats:
        x = jax.lax.stop_gradient(x)
    ps = lengths is not None
    w = readout_weights(K, readout, lengths=lengths)
    if K_rev is None:
        tau = readout_measure(w, x, measure=measure, per_sequence=ps)
        return tau, {"": tau}
    K_rev = jnp.asarray(K_rev)
    if K_rev.shape != K.shape:
        raise ValueError(f"K has shape {tuple(K.shape)} but K_rev has shape {tuple(K_rev.shape)}; "
                         "they must match")
    w_rev = readout_weights(K_rev, readout, reverse=True, lengths=lengths)
    if readout == "mean":
        tau = readout_measure(w + w_rev, x, measure=measure, per_sequence=ps)
        return tau, {"": tau, "_rev": tau}
    tau_f = readout_measure(w, x, measure=measure, per_sequence=ps)
    tau_b = readout_measure(w_rev, x, measure=measure, per_sequence=ps)
    return (tau_f + tau_b) / 2, {"": tau_f, "_rev": tau_b}
