"""Selective (input-dependent, Mamba-style) diagonal scan, with bounded backward memory.

The state ``x (D, N)`` of every time step is what a selective scan must not keep: for
``L`` steps it is ``L * D * N`` numbers (the PyTorch loop of the selective-SSM paper keeps
all of them, and its backward pass grows with ``L`` accordingly). Here:

* ``method="sequential"`` runs one fused ``lax.scan`` step per time step that forms
  ``exp(delta_t A)`` and ``delta_t B_t u_t`` on the fly and reads out ``y_t = x_t C_t``
  immediately, so the forward pass never materializes an ``(L, D, N)`` array;
* ``method="associative"`` materializes the ``(L, D, N)`` coefficients of one chunk and
  runs ``lax.associative_scan`` on them (log depth, the accelerator choice);
* ``chunk_size=K`` splits the sequence into chunks of ``K`` steps under ``jax.checkpoint``:
  the backward pass stores only the ``(D, N)`` state at every chunk boundary and recomputes
  the states inside one chunk at a time, so its memory is ``(L/K + K) * D * N`` instead of
  ``L * D * N``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from ssm_jax.kernels._checks import check_choice, check_rank, check_same
from ssm_jax.kernels.scan import _accumulation_dtype, _combine, auto_method

SELECTIVE_METHODS = ("associative", "sequential", "auto")

# lax.scan unroll factor of the fused sequential step. Measured (benchmarks/selective.py and
# the paper-3 sweeps): unrolling by 8 triples the compile time (10 s vs 2.3 s for a vmapped
# forward+backward at d=4, N=4, T=300) for no gain in run time at these sizes.
_UNROLL = 1


def _chunk_sequential(h, u, delta, A, B, C):
    """Fused recurrence over one chunk. h (D, N); u (K, D); delta (K, D|1); B, C (K, N).
    Returns (h at the end, y (K, D))."""

    def step(h, xs):
        u_t, d_t, B_t, C_t = xs
        dt = d_t[:, None]  # (D|1, 1)
        h = jnp.exp(dt * A) * h + dt * u_t[:, None] * B_t[None, :]
        return h, h @ C_t

    K = u.shape[0]
    return lax.scan(step, h, (u, delta, B, C), unroll=max(1, min(_UNROLL, K)))


def _chunk_associative(h, u, delta, A, B, C):
    """Associative scan over one chunk: materializes the chunk's (K, D, N) coefficients."""
    dt = delta[:, :, None]  # (K, D|1, 1)
    a = jnp.exp(dt * A[None])  # (K, D, N)
    b = dt * B[:, None, :] * u[:, :, None]  # (K, D, N)
    b = b.at[0].add(a[0] * h)  # the carried state enters at the chunk's first step
    _, x = lax.associative_scan(_combine, (a, b), axis=0)
    return x[-1], jnp.einsum("kdn,kn->kd", x, C)


CHUNK_BACKENDS = {"associative": _chunk_associative, "sequential": _chunk_sequential}


def selective_scan(u, delta, A, B, C, *, method: str = "auto", h0=None,
                   chunk_size: int | None = None, return_state: bool = False):
    """Time-varying diagonal SSM with ZOH on A and Euler on B (the selective-SSM recipe).

    ``x[t] = exp(delta[t, :, None] * A) * x[t-1] + delta[t, :, None] * B[t][None, :] * u[t, :, None]``,
    ``y[t, d] = sum_n C[t, n] * x[t, d, n]``, ``x[-1] = h0`` (zeros if None). No D term.

    Args:
      u: (L, D) real input.
      delta: (L, D) or (L, 1) positive step sizes; ``(L, 1)`` is one step per time step shared
        by all channels (the paper form of the selective-SSM generalization paper).
      A: (D, N) real state matrix (diagonal per channel).
      B: (L, N) input-dependent input weights.
      C: (L, N) input-dependent output weights.
      method: "sequential" (fused ``lax.scan``), "associative" (``lax.associative_scan``) or
        "auto" (the faster one on this backend, :func:`ssm_jax.kernels.auto_method`).
      h0: (D, N) initial state or None.
      chunk_size: None or 0: one chunk (no rematerialization); K > 0: chunks of K steps under
        ``jax.checkpoint`` (the last one padded with ``delta = 0``, which leaves the state
        unchanged), bounding the memory of the backward pass.
      return_state: also return the final state ``x[L-1]`` (D, N).

    Returns:
      y: (L, D), dtype ``result_type`` of the inputs (computed in at least float32);
      ``(y, x_last)`` with ``return_state``.
    """
    check_choice("selective scan method", method, SELECTIVE_METHODS)
    u, delta, A, B, C = map(jnp.asarray, (u, delta, A, B, C))
    check_rank("u", u, (2,), "(L, D)")
    check_rank("A", A, (2,), "(D, N)")
    L, D = u.shape
    N = A.shape[1]
    check_same("A[:, 0]", A.shape[:1], "u[0]", (D,), "channel count D")
    if delta.ndim != 2 or delta.shape not in ((L, D), (L, 1)):
        raise ValueError(f"delta must be (L, D) = {(L, D)} or (L, 1), got shape {delta.shape}")
    check_same("B", B.shape, "(L, N)", (L, N), "B must be (L, N)")
    check_same("C", C.shape, "(L, N)", (L, N), "C must be (L, N)")
    if chunk_size is not None and chunk_size < 0:
        raise ValueError(f"chunk_size must be None or >= 0, got {chunk_size}")
    out_dtype = jnp.result_type(u, delta, A, B, C)
    acc = _accumulation_dtype(out_dtype)
    u, delta, A, B, C = (x.astype(acc) for x in (u, delta, A, B, C))
    h = jnp.zeros((D, N), acc) if h0 is None else jnp.broadcast_to(jnp.asarray(h0, acc), (D, N))
    backend = CHUNK_BACKENDS[auto_method() if method == "auto" else method]

    if not chunk_size or chunk_size >= L:
        h, y = backend(h, u, delta, A, B, C)
    else:
        K = int(chunk_size)
        n_chunks = -(-L // K)
        pad = n_chunks * K - L
        # delta = 0 on the padded steps: exp(0 * A) = 1 and no input, the state is unchanged.
        chunks = [jnp.pad(x, ((0, pad), (0, 0))).reshape(n_chunks, K, x.shape[1])
                  for x in (u, delta, B, C)]
        body = jax.checkpoint(lambda h, xs: backend(h, xs[0], xs[1], A, xs[2], xs[3]))
        h, y = lax.scan(body, h, tuple(chunks))
        y = y.reshape(n_chunks * K, D)[:L]
    y = y.astype(out_dtype)
    return (y, h.astype(out_dtype)) if return_state else y
