"""Projections between real features and complex SSM states, as real matrix products.

The input and output maps of a diagonal SSM are complex, the features are real. Written as
complex einsums, XLA multiplies the real input by a complex matrix with four real products
(and keeps an all-zero imaginary part of the input); on stacked real and imaginary parts one
real product does the same work with half the arithmetic, in both passes. Complex numbers
remain only inside the recurrence.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax


def input_projection(u, B_bar):
    """``B_bar u`` for real ``u``.

    Args:
      u: (..., H) real.
      B_bar: (M, H) complex.

    Returns:
      (..., M) complex: ``sum_h B_bar[m, h] u[..., h]``, one real product with the stacked
      ``[Re B_bar; Im B_bar]`` (2M, H).
    """
    M = B_bar.shape[0]
    W = jnp.concatenate([B_bar.real, B_bar.imag], axis=0).astype(u.dtype)  # (2M, H)
    z = jnp.einsum("...h,mh->...m", u, W)
    return lax.complex(z[..., :M], z[..., M:])


def output_projection(x, C, scale: float = 1.0):
    """``scale * Re(C x)``.

    Args:
      x: (..., M) complex states.
      C: (H, M) complex.
      scale: 2 under conjugate symmetry, else 1.

    Returns:
      (..., H) real: ``scale * sum_m (Re C Re x - Im C Im x)``, one real product of the
      stacked ``[Re x, Im x]`` (..., 2M) with ``[Re C, -Im C]`` (H, 2M).
    """
    W = jnp.concatenate([C.real, -C.imag], axis=1)  # (H, 2M)
    z = jnp.concatenate([x.real, x.imag], axis=-1)  # (..., 2M)
    return scale * jnp.einsum("...m,hm->...h", z, W.astype(z.dtype))


def scaled_input(u, B_bar):
    """``B_bar * u[..., None]`` for real ``u`` without complex products: (..., H) real and
    (H, N) complex -> (..., H, N) complex (the SISO input map of S4D's recurrent mode)."""
    u = u[..., None]
    return lax.complex(B_bar.real * u, B_bar.imag * u)


def diagonal_readout(h, C, scale: float = 1.0):
    """``scale * Re(sum_n C[:, n] h[..., :, n])`` for h (..., H, N) complex, C (H, N) complex ->
    (..., H) real, from real and imaginary parts (the SISO read-out of S4D's recurrent mode)."""
    return scale * jnp.sum(h.real * C.real - h.imag * C.imag, axis=-1)
