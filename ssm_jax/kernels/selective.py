"""Selective (input-dependent, Mamba-style) diagonal scan, with bounded backward memory.

The state ``x (D, N)`` of every time step is what a selective scan must not keep: for
``L`` steps it is ``L * D * N`` numbers (the PyTorch loop of the selective-SSM paper keeps
all of them, and its backward pass grows with ``L`` accordingly). Here:

* ``method="sequential"`` runs one fused ``lax.scan`` step per time step that forms
  ``exp(delta_t A)`` and ``delta_t B_t u_t`` on the fly and reads out ``y_t = x_t C_t``
  immediately, so the forward pass never materializes an ``(L, D, N)`` array. A call that is
  not differentiated runs it as one loop over all ``L`` steps, whatever the chunk size;
* ``method="associative"`` materializes the ``(K, D, N)`` coefficients of one chunk of ``K``
  steps and runs ``lax.associative_scan`` on them (log depth, the accelerator choice); the
  chunks run one after the other;
* ``chunk_size=K`` splits the sequence into chunks of ``K`` steps for the backward pass: it
  stores only the ``(D, N)`` state at every chunk boundary and recomputes the states inside
  one chunk at a time, so its memory is ``(L/K + K) * D * N`` instead of ``L * D * N``;
* ``backward="adjoint"`` differentiates with the hand-written adjoint recurrence below
  instead of JAX's transpose of the scan. Autodiff of a ``lax.scan`` keeps every
  intermediate of the step body and runs a reverse loop over all of them; the adjoint needs
  only two minimal linear recurrences per chunk (the states, recomputed forward, and the
  state adjoints ``G``, backward); every parameter gradient is then one vectorized product
  over the chunk. ``backward="chunkwise"`` is JAX's reverse mode of one chunk at a time
  (the gradients of ``jax.checkpoint`` over the chunks) in a custom VJP, so that a call that
  is not differentiated still runs the one-loop forward; ``backward="autodiff"`` is plain
  JAX autodiff of the (checkpointed) scan, the only mode with forward-mode derivatives.

Defaults (``method="auto"``, ``chunk_size=None``, ``backward="auto"``) are chosen from the
shapes and the backend by :func:`auto_method`, :func:`default_chunk_size` and
:func:`default_backward`, measured on CPU in ``benchmarks/selective.py`` (tables in
``benchmarks/README.md``) and not yet measured on an accelerator.

Adjoint of ``x_t = a_t x_{t-1} + b_t``, ``a_t = exp(delta_t A)``, ``b_t = delta_t u_t B_t``,
``y_t = x_t C_t`` (all ``(D, N)`` per step, channel index d, state index n)::

    G_t   = gy_t C_t + a_{t+1} G_{t+1}           (dL/dx_t; G_{L-1} gets the final-state cotangent)
    gC_t  = sum_d gy_t[d] x_t[d, :]              gA  = sum_t delta_t P_t,  P_t = G_t a_t x_{t-1}
    gu_t  = delta_t sum_n G_t B_t                gB_t = sum_d delta_t u_t G_t
    gdelta_t = sum_n (A P_t + G_t u_t B_t)       (summed over d too when delta is shared)
    gh0   = a_0 G_0
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from ssm_jax.kernels.checks import check_choice, check_floating, check_rank, check_same
from ssm_jax.kernels.scan import accumulation_dtype, auto_method, combine_affine

SELECTIVE_METHODS = ("associative", "sequential", "auto")
BACKWARDS = ("adjoint", "autodiff", "chunkwise", "auto")

# lax.scan unroll factor of the fused sequential step. Measured (benchmarks/selective.py and
# the paper-3 sweeps): unrolling by 8 triples the compile time (10 s vs 2.3 s for a vmapped
# forward+backward at d=4, N=4, T=300) for no gain in run time at these sizes. For the
# one-loop forward, unrolling by 2 or 4 was 1.05-1.10x faster at the paper's size (batch 64,
# T=500, d=16, N=4) but 1.05-1.20x slower at d=128 and d=256, N=16: not kept.
UNROLL = 1


def _chunk_sequential(h, u, delta, A, B, C):
    """Fused recurrence over one chunk. h (D, N); u (K, D); delta (K, D|1); B, C (K, N).
    Returns (h at the end, y (K, D))."""

    def step(h, xs):
        u_t, d_t, B_t, C_t = xs
        dt = d_t[:, None]  # (D|1, 1)
        h = jnp.exp(dt * A) * h + dt * u_t[:, None] * B_t[None, :]
        return h, h @ C_t

    K = u.shape[0]
    return lax.scan(step, h, (u, delta, B, C), unroll=max(1, min(UNROLL, K)))


def _chunk_associative(h, u, delta, A, B, C):
    """Associative scan over one chunk: materializes the chunk's (K, D, N) coefficients."""
    dt = delta[:, :, None]  # (K, D|1, 1)
    a = jnp.exp(dt * A[None])  # (K, D, N)
    b = dt * B[:, None, :] * u[:, :, None]  # (K, D, N)
    b = b.at[0].add(a[0] * h)  # the carried state enters at the chunk's first step
    _, x = lax.associative_scan(combine_affine, (a, b), axis=0)
    return x[-1], jnp.einsum("kdn,kn->kd", x, C)


CHUNK_BACKENDS = {"associative": _chunk_associative, "sequential": _chunk_sequential}


# ------------------------------------------------------------------------------ adjoint
def _linear_recurrence(h, a, b, method, reverse=False):
    """All states of ``x_t = a_t x_{t-1} + b_t`` (``x_{t+1}`` with ``reverse``) from ``x = h``:
    a, b (K, D, N), h (D, N) -> (K, D, N)."""
    if method == "associative":
        b = b.at[-1 if reverse else 0].add(a[-1 if reverse else 0] * h)
        return lax.associative_scan(combine_affine, (a, b), axis=0, reverse=reverse)[1]

    def step(x, ab):
        x = ab[0] * x + ab[1]
        return x, x

    return lax.scan(step, h, (a, b), reverse=reverse)[1]


def to_chunks(x, K: int):
    """(L, F) -> (ceil(L / K), K, F), the last chunk padded with zeros."""
    L = x.shape[0]
    n = -(-L // K)
    return jnp.pad(x, ((0, n * K - L), (0, 0))).reshape(n, K, x.shape[1])


def from_chunks(x, L: int):
    """(n, K, F) -> (L, F): the inverse of :func:`to_chunks` (drops the padding)."""
    return x.reshape(-1, x.shape[-1])[:L]


def _chunked_forward(u, delta, A, B, C, h0, method):
    """Chunks u (n, K, D), delta (n, K, D|1), B, C (n, K, N) -> ((y (n, K, D), x_last (D, N)),
    the state entering every chunk (n, D, N))."""
    backend = CHUNK_BACKENDS[method]

    def body(h, xs):
        h_end, y = backend(h, xs[0], xs[1], A, xs[2], xs[3])
        return h_end, (y, h)

    h_last, (y, starts) = lax.scan(body, h0, (u, delta, B, C))
    return (y, h_last), starts


def _forward(u, delta, A, B, C, h0, method, K):
    """Forward pass only, nothing kept for a backward pass: u (L, D), delta (L, D|1), B, C
    (L, N), h0 (D, N) -> (y (L, D), x_last (D, N)). The sequential method runs one fused
    ``lax.scan`` over all L steps whatever K (chunks would only add an outer loop); the
    associative method runs chunks of K steps, which bounds its ``(K, D, N)`` coefficients."""
    if method == "sequential" or K >= u.shape[0]:
        h_last, y = CHUNK_BACKENDS[method](h0, u, delta, A, B, C)
        return y, h_last
    L = u.shape[0]
    (y, h_last), _ = _chunked_forward(*(to_chunks(x, K) for x in (u, delta)), A,
                                      *(to_chunks(x, K) for x in (B, C)), h0, method)
    return from_chunks(y, L), h_last


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7))
def _adjoint_scan(u, delta, A, B, C, h0, method, K):
    return _forward(u, delta, A, B, C, h0, method, K)


def _adjoint_fwd(u, delta, A, B, C, h0, method, K):
    L = u.shape[0]
    u_, delta_, B_, C_ = (to_chunks(x, K) for x in (u, delta, B, C))
    # delta = 0 on the padded steps: exp(0 * A) = 1 and no input, the state is unchanged.
    (y, h_last), starts = _chunked_forward(u_, delta_, A, B_, C_, h0, method)
    return (from_chunks(y, L), h_last), (u_, delta_, A, B_, C_, starts)


def _adjoint_bwd(method, K, residuals, cotangents):
    u, delta, A, B, C, starts = residuals
    gy, g_last = cotangents
    L = gy.shape[0]
    gy = to_chunks(gy, K)

    def chunk(carry, xs):  # one chunk, last to first; carry: (gA, dL/dx at the chunk's end)
        gA, g_end = carry
        u_, dt_, B_, C_, h_, gy_ = xs
        dt = dt_[:, :, None]  # (K, D|1, 1)
        a = jnp.exp(dt * A)  # (K, D, N)
        uB = u_[:, :, None] * B_[:, None, :]  # (K, D, N)
        x = _linear_recurrence(h_, a, dt * uB, method)
        # G_t = gy_t C_t + g_t with g_t = a_{t+1} G_{t+1}: the same recurrence, reversed, on
        # a shifted by one step (the carry g_end enters at the chunk's last step).
        a_next = jnp.concatenate([a[1:], jnp.ones_like(a[:1])], axis=0)
        G = _linear_recurrence(g_end, a_next, gy_[:, :, None] * C_[:, None, :], method,
                               reverse=True)
        x_prev = jnp.concatenate([h_[None], x[:-1]], axis=0)
        P = G * a * x_prev
        gdt = jnp.sum(A * P + G * uB, axis=-1)  # (K, D)
        if dt_.shape[-1] == 1:
            gdt = jnp.sum(gdt, axis=-1, keepdims=True)
        grads = (jnp.sum(G * B_[:, None, :], axis=-1) * dt_,  # gu (K, D)
                 gdt,
                 jnp.einsum("kdn,kd->kn", G, u_ * dt_),  # gB (K, N)
                 jnp.einsum("kdn,kd->kn", x, gy_))  # gC (K, N)
        return (gA + jnp.sum(dt * P, axis=0), a[0] * G[0]), grads

    (gA, gh0), grads = lax.scan(
        chunk, (jnp.zeros_like(A), g_last), (u, delta, B, C, starts, gy), reverse=True)
    gu, gdelta, gB, gC = (from_chunks(g, L) for g in grads)
    return gu, gdelta, gA, gB, gC, gh0


_adjoint_scan.defvjp(_adjoint_fwd, _adjoint_bwd)


# ---------------------------------------------------------------- autodiff chunk by chunk
@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7))
def _chunkwise_autodiff_scan(u, delta, A, B, C, h0, method, K):
    return _forward(u, delta, A, B, C, h0, method, K)


def _chunkwise_autodiff_bwd(method, K, residuals, cotangents):
    """JAX's reverse mode of one chunk at a time, last to first, from the state entering it:
    the gradients of the checkpointed ``lax.scan`` (``backward="autodiff"`` with chunks), while
    a call that is not differentiated runs the one-loop forward of :func:`_forward`."""
    u, delta, A, B, C, starts = residuals
    gy, g_last = cotangents
    L = gy.shape[0]
    backend = CHUNK_BACKENDS[method]

    def chunk(carry, xs):
        gA, g_end = carry
        u_, dt_, B_, C_, h_, gy_ = xs
        _, pullback = jax.vjp(lambda h, u, dt, A, B, C: backend(h, u, dt, A, B, C),
                              h_, u_, dt_, A, B_, C_)
        gh, gu, gdt, gA_, gB, gC = pullback((g_end, gy_))
        return (gA + gA_, gh), (gu, gdt, gB, gC)

    (gA, gh0), grads = lax.scan(chunk, (jnp.zeros_like(A), g_last),
                                (u, delta, B, C, starts, to_chunks(gy, K)), reverse=True)
    gu, gdelta, gB, gC = (from_chunks(g, L) for g in grads)
    return gu, gdelta, gA, gB, gC, gh0


_chunkwise_autodiff_scan.defvjp(_adjoint_fwd, _chunkwise_autodiff_bwd)


# ------------------------------------------------------------------------------ defaults
# Every chunk size that default_chunk_size returns on CPU when the sequence is longer.
CPU_CHUNK_CHOICES = (8, 32)
# Accelerators (not measured): the largest power of two K with K * D * N <= this many numbers.
ACCELERATOR_CHUNK_NUMBERS = 2 ** 20


def default_chunk_size(L: int, D: int, N: int, backward: str, backend: str) -> int:
    """The chunk size ``K`` that :func:`selective_scan` uses when ``chunk_size`` is None.

    Args:
      L, D, N: sequence length, channels and state size per channel of one sequence.
      backward: the backward mode that will run ("adjoint", "chunkwise" or "autodiff").
      backend: ``jax.default_backend()``, e.g. "cpu", "gpu", "tpu".

    Returns:
      K with ``1 <= K <= L``; ``K == L`` is one chunk.

    CPU (measured with ``benchmarks/selective.py`` and a sweep of K in 8..128 at batch x L x
    D x N from 64 x 150 x 16 x 4 to 4 x 2048 x 256 x 16 on 2 cores; ``benchmarks/README.md``):
    32 steps, except 8 for the adjoint when the state of one sequence has more than 256
    numbers (``D * N > 256``), whose six ``(K, D, N)`` arrays per chunk then spill the cache.
    Every choice was within 1.12x of the fastest K of its shape (the best K also depends on the
    batch, which the kernel does not see under ``vmap``). One chunk makes the backward pass
    keep every ``(L, D, N)`` array at once: 1.6-5x slower and 3-30x the memory. Sequences of
    at most K steps are one chunk.

    Accelerators: the largest power of two with ``K * D * N <= 2**20`` (4 MiB of float32 per
    sequence and coefficient array), at most L. Not measured: to be re-measured on a GPU.
    """
    if backend == "cpu":
        short, long = CPU_CHUNK_CHOICES
        K = short if backward == "adjoint" and D * N > 256 else long
    else:
        K = 1 << max(0, (ACCELERATOR_CHUNK_NUMBERS // max(1, D * N)).bit_length() - 1)
    return min(L, K)


def default_backward(shared_delta: bool, backend: str) -> str:
    """The backward pass that :func:`selective_scan` runs with ``backward="auto"``.

    Args:
      shared_delta: delta is ``(L, 1)``, one step size per time step for all channels (the
        paper form); False for a per-channel ``(L, D)`` delta (the Mamba form).
      backend: ``jax.default_backend()``.

    CPU (measured in ``benchmarks/selective.py``): "adjoint" when delta is shared: JAX's
    transpose of the scan then sums the step-size gradient over the D channels inside every
    step of its reverse loop, which the adjoint does once per chunk, vectorized.
    "chunkwise" (JAX's reverse mode chunk by chunk) for a per-channel delta, where that sum
    is not needed and the adjoint's extra ``(K, D, N)`` arrays made it slower.

    Accelerators: "adjoint" (its two recurrences per chunk are then associative scans). Not
    measured: to be re-measured on a GPU.
    """
    if backend == "cpu" and not shared_delta:
        return "chunkwise"
    return "adjoint"


def selective_scan(u, delta, A, B, C, *, method: str = "auto", h0=None,
                   chunk_size: int | None = None, return_state: bool = False,
                   backward: str = "auto"):
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
      method: "sequential" (fused ``lax.scan``), "associative" (``lax.associative_scan`` in
        chunks) or "auto": :func:`ssm_jax.kernels.auto_method`, "sequential" on CPU, where it
        was measured faster (10-12x the forward speed of the associative scan without chunks,
        1.6-5.6x with chunks of 8-64; ``benchmarks/README.md``), "associative" on
        accelerators (not measured: to be re-measured on a GPU).
      h0: (D, N) initial state or None.
      chunk_size: None: :func:`default_chunk_size` of (L, D, N), the backward mode and the
        backend; 0: one chunk (no rematerialization; the backward pass keeps ``L * D * N``
        numbers); K > 0: chunks of K steps (the last one padded with ``delta = 0``, which
        leaves the state unchanged), bounding the memory of the backward pass.
      return_state: also return the final state ``x[L-1]`` (D, N).
      backward: "adjoint" (the hand-written reverse recurrence of the module docstring, with
        the same chunks; reverse mode only), "chunkwise" (JAX's reverse mode one chunk at a
        time; reverse mode only), "autodiff" (JAX differentiates the checkpointed scan; also
        forward mode, e.g. ``jax.jvp``) or "auto": :func:`default_backward` (reverse mode
        only).

    The defaults are chosen so that a call with them is, on CPU, as fast as the fastest
    setting measured in ``benchmarks/selective.py`` (within 1.06x, at the noise of a loaded
    machine) with a bounded backward memory; a call that is not differentiated runs the
    sequential method as one fused loop over all L steps.

    Returns:
      y: (L, D), dtype ``result_type`` of the inputs (computed in at least float32);
      ``(y, x_last)`` with ``return_state``.
    """
    check_choice("selective scan method", method, SELECTIVE_METHODS)
    check_choice("selective scan backward", backward, BACKWARDS)
    u, delta, A, B, C = map(jnp.asarray, (u, delta, A, B, C))
    check_rank("u", u, (2,), "(L, D)")
    check_rank("A", A, (2,), "(D, N)")
    for name, x in (("u", u), ("delta", delta), ("A", A), ("B", B), ("C", C)):
        check_floating(name, x)
    L, D = u.shape
    N = A.shape[1]
    check_same("A[:, 0]", A.shape[:1], "u[0]", (D,), "channel count D")
    if delta.ndim != 2 or delta.shape not in ((L, D), (L, 1)):
        raise ValueError(f"delta must be (L, D) = {(L, D)} or (L, 1), got shape {delta.shape}")
    check_same("B", B.shape, "(L, N)", (L, N), "B must be (L, N)")
    check_same("C", C.shape, "(L, N)", (L, N), "C must be (L, N)")
    if chunk_size is not None and chunk_size < 0:
        raise ValueError(f"chunk_size must be None or >= 0, got {chunk_size}")
    backend = jax.default_backend()
    if backward == "auto":
        backward = default_backward(delta.shape[1] == 1, backend)
    if chunk_size is None:
        chunk_size = default_chunk_size(L, D, N, backward, backend)
    out_dtype = jnp.result_type(u, delta, A, B, C)
    acc = accumulation_dtype(out_dtype)
    u, delta, A, B, C = (x.astype(acc) for x in (u, delta, A, B, C))
    h = jnp.zeros((D, N), acc) if h0 is None else jnp.broadcast_to(jnp.asarray(h0, acc), (D, N))
    method = auto_method() if method == "auto" else method
    K = L if chunk_size == 0 or chunk_size >= L else int(chunk_size)
    if backward == "adjoint":
        y, h = _adjoint_scan(u, delta, A, B, C, h, method, K)
    elif backward == "chunkwise" and K < L:
        y, h = _chunkwise_autodiff_scan(u, delta, A, B, C, h, method, K)
    elif K == L:
        h, y = CHUNK_BACKENDS[method](h, u, delta, A, B, C)
    else:
        chunk_fn = CHUNK_BACKENDS[method]
        body = jax.checkpoint(lambda h, xs: chunk_fn(h, xs[0], xs[1], A, xs[2], xs[3]))
        h, y = lax.scan(body, h, tuple(to_chunks(x, K) for x in (u, delta, B, C)))
        y = from_chunks(y, L)
    y = y.astype(out_dtype)
    return (y, h.astype(out_dtype)) if return_state else y
