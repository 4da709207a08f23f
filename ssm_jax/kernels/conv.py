"""Convolution view of diagonal SISO SSMs: Vandermonde kernel, FFT causal convolution,
and the matching recurrent and single-step forms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from ssm_jax.kernels.checks import check_rank, check_same
from ssm_jax.kernels.projections import diagonal_readout, scaled_input
from ssm_jax.kernels.scan import linear_recurrence

# Default cap on the elements of one (H, N, chunk) Vandermonde block.
_MAX_BLOCK_ELEMENTS = 1 << 22


def _log_powers(log_Lambda, l):
    """``l * log(Lambda)`` with the 0-th power exactly 0 (so ``Lambda = 0`` gives ``0**0 = 1``)."""
    # Real and imaginary parts are scaled separately: a complex product with log(0) = -inf
    # would produce -inf * 0 = nan in the imaginary part.
    scaled = lax.complex(log_Lambda.real * l, log_Lambda.imag * l)
    return jnp.where(l == 0, jnp.zeros_like(scaled), scaled)


def chunked_vandermonde(Lambda_bar, length: int, contract, *, chunk_size: int):
    """``contract(V)`` over the taps ``l = 0..length-1`` of ``V[..., l] = Lambda_bar ** l``,
    block by block.

    The powers of one block, ``V (..., T)`` with ``T = chunk_size`` taps, are built, contracted
    to the kernel's taps ``(..., T)`` and dropped; each block is ``jax.checkpoint``-ed, so the
    backward pass rebuilds them too. Memory is ``O(Lambda_bar.size * chunk_size)`` plus the
    output in both passes, whatever the length.

    Args:
      Lambda_bar: (...) complex, discrete eigenvalues (any shape).
      length: L, number of taps.
      contract: ``(V (..., T) complex) -> (..., T)``; linear in V (e.g. an einsum with C B).
      chunk_size: taps per block, ``1 <= chunk_size``.

    Returns:
      ``(..., L)``: the contracted taps in order (the leading axes are those ``contract``
      returns).
    """
    chunk_size = int(min(chunk_size, length))
    num_chunks = -(-length // chunk_size)
    log_Lambda = jnp.log(Lambda_bar.astype(jnp.result_type(Lambda_bar, jnp.complex64)))

    @jax.checkpoint
    def block(start):
        l = start + jnp.arange(chunk_size)  # (T,)
        return contract(jnp.exp(_log_powers(log_Lambda[..., None], l)))

    if num_chunks == 1:
        return block(0)[..., :length]
    K = lax.map(block, jnp.arange(num_chunks) * chunk_size)  # (chunks, ..., T)
    K = jnp.moveaxis(K, 0, -2)  # (..., chunks, T)
    return K.reshape(K.shape[:-2] + (num_chunks * chunk_size,))[..., :length]


def _check_siso(Lambda_bar, B_bar, C):
    check_rank("Lambda_bar", Lambda_bar, (2,), "(H, N)")
    check_same("Lambda_bar", Lambda_bar.shape, "B_bar", B_bar.shape, "SSM parameters must match")
    check_same("Lambda_bar", Lambda_bar.shape, "C", C.shape, "SSM parameters must match")


def ssm_kernel(Lambda_bar, B_bar, C, length: int, *, conj_sym: bool = True, chunk_size=None):
    """Convolution kernels of H independent diagonal SISO SSMs.

    ``K[h, l] = scale * Re(sum_n C[h, n] * B_bar[h, n] * Lambda_bar[h, n] ** l)``, ``scale = 2`` if
    ``conj_sym`` (one state of each conjugate pair is stored) else 1.

    Args:
      Lambda_bar: (H, N) complex, discrete eigenvalues.
      B_bar: (H, N) complex, discrete input weights.
      C: (H, N) complex, output weights.
      length: L, number of kernel taps.
      conj_sym: double the real part (conjugate-pair storage).
      chunk_size: taps per block; the powers are built block by block, so memory is
        O(H * N * chunk_size) in the forward and backward pass. Default: whole blocks of at most
        ``2**22`` elements.

    Returns:
      K: (H, L) real.
    """
    Lambda_bar, B_bar, C = map(jnp.asarray, (Lambda_bar, B_bar, C))
    _check_siso(Lambda_bar, B_bar, C)
    length = int(length)
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    H, N = Lambda_bar.shape
    if chunk_size is None:
        chunk_size = max(1, _MAX_BLOCK_ELEMENTS // max(H * N, 1))
    CB = C * B_bar  # (H, N)
    scale = 2.0 if conj_sym else 1.0
    contract = lambda V: scale * jnp.einsum("hn,hnt->ht", CB, V).real  # (H, T)
    return chunked_vandermonde(Lambda_bar, length, contract, chunk_size=chunk_size)


def causal_conv(u, K):
    """Causal convolution of each channel with its kernel, by FFT with zero padding.

    ``y[t, h] = sum_{s <= t} K[h, t - s] * u[s, h]`` (no wrap-around).

    Args:
      u: (L, H) real input.
      K: (H, L) real kernels.

    Returns:
      y: (L, H), dtype of ``result_type(u, K)``.
    """
    u, K = jnp.asarray(u), jnp.asarray(K)
    check_rank("u", u, (2,), "(L, H)")
    check_rank("K", K, (2,), "(H, L)")
    if u.shape[::-1] != K.shape:
        raise ValueError(f"causal_conv expects u (L, H) and K (H, L): u has shape {u.shape} "
                         f"but K has shape {K.shape}")
    L = u.shape[0]
    n = 2 * L  # linear (not circular) convolution needs at least 2L - 1 points
    U = jnp.fft.rfft(u, n=n, axis=0)  # (n//2+1, H)
    Kf = jnp.fft.rfft(K.T, n=n, axis=0)  # (n//2+1, H)
    y = jnp.fft.irfft(U * Kf, n=n, axis=0)[:L]
    return y.astype(jnp.result_type(u, K))


def ssm_step(h, u_t, Lambda_bar, B_bar, C, *, conj_sym: bool = True):
    """One step of H diagonal SISO SSMs, for step-by-step inference.

    Args:
      h: (H, N) complex, previous state.
      u_t: (H,) real, input at this step.
      Lambda_bar, B_bar, C: (H, N) complex.
      conj_sym: double the real part of the read-out.

    Returns:
      (h_new, y_t): ``h_new = Lambda_bar * h + B_bar * u_t[:, None]`` (H, N) and
      ``y_t = scale * Re(sum_n C * h_new)`` (H,).
    """
    _check_siso(Lambda_bar, B_bar, C)
    check_same("h", jnp.shape(h), "Lambda_bar", Lambda_bar.shape, "state shape")
    check_same("u_t", jnp.shape(u_t), "Lambda_bar[:, 0]", Lambda_bar.shape[:1], "input shape")
    h_new = Lambda_bar * h + B_bar * u_t[:, None]
    scale = 2.0 if conj_sym else 1.0
    return h_new, scale * jnp.sum(C * h_new, axis=-1).real


def ssm_recurrence(u, Lambda_bar, B_bar, C, *, conj_sym: bool = True, method: str = "auto",
                   h0=None, reverse: bool = False):
    """H diagonal SISO SSMs run as a recurrence over the sequence (no kernel).

    Args:
      u: (L, H) real input.
      Lambda_bar, B_bar, C: (H, N) complex.
      conj_sym: double the real part of the read-out.
      method: scan backend of :func:`linear_recurrence`.
      h0: (H, N) complex initial state or None.
      reverse: run from the end of the sequence to the start.

    Returns:
      y: (L, H) real; equals ``causal_conv(u, ssm_kernel(...))`` when h0 is None and not reverse.
    """
    u = jnp.asarray(u)
    _check_siso(Lambda_bar, B_bar, C)
    check_rank("u", u, (2,), "(L, H)")
    check_same("u[0]", u.shape[1:], "Lambda_bar[:, 0]", Lambda_bar.shape[:1], "channel count H")
    Bu = scaled_input(u, B_bar)  # (L, H, N); real times complex without complex products
    h = linear_recurrence(Lambda_bar, Bu, h0, reverse=reverse, method=method)  # (L, H, N)
    y = diagonal_readout(h, C, 2.0 if conj_sym else 1.0)
    return y.astype(jnp.result_type(u.dtype, C.real.dtype))


def mimo_kernel(Lambda_bar, B_bar, C, length: int, *, conj_sym: bool = True, chunk_size=None):
    """Matrix-valued kernel of one diagonal MIMO SSM (S5).

    ``K[o, i, l] = scale * Re(sum_p C[o, p] * B_bar[p, i] * Lambda_bar[p] ** l)``, so that
    ``y[t, o] = sum_i sum_{s <= t} K[o, i, t - s] * u[s, i]``.

    Args:
      Lambda_bar: (P,) complex.
      B_bar: (P, H_in) complex.
      C: (H_out, P) complex.
      length: L.
      conj_sym: double the real part.
      chunk_size: taps per block (memory O(H_out * H_in * chunk_size)); default whole blocks of
        at most ``2**22`` elements.

    Returns:
      K: (H_out, H_in, L) real.
    """
    Lambda_bar, B_bar, C = map(jnp.asarray, (Lambda_bar, B_bar, C))
    check_rank("Lambda_bar", Lambda_bar, (1,), "(P,)")
    check_rank("B_bar", B_bar, (2,), "(P, H_in)")
    check_rank("C", C, (2,), "(H_out, P)")
    check_same("B_bar[:, 0]", B_bar.shape[:1], "Lambda_bar", Lambda_bar.shape, "state size P")
    check_same("C[0]", C.shape[1:], "Lambda_bar", Lambda_bar.shape, "state size P")
    H_out, H_in = C.shape[0], B_bar.shape[1]
    if chunk_size is None:
        chunk_size = max(1, _MAX_BLOCK_ELEMENTS // max(H_out * H_in, Lambda_bar.shape[0], 1))
    scale = 2.0 if conj_sym else 1.0
    contract = lambda V: scale * jnp.einsum("op,pi,pt->oit", C, B_bar, V).real  # (H_out, H_in, T)
    return chunked_vandermonde(Lambda_bar, int(length), contract, chunk_size=chunk_size)
