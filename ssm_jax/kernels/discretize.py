"""Discretization of diagonal continuous-time SSMs (zero-order hold and bilinear)."""

from __future__ import annotations

import jax.numpy as jnp

from ssm_jax.kernels.checks import check_choice

DISCRETIZATIONS = ("zoh", "bilinear")

# Below this |step * Lambda| the ZOH factor (exp(z) - 1) / z is evaluated by its Taylor series,
# so that eigenvalues with Lambda = 0 (zero real and imaginary part) are handled exactly.
_SERIES_RADIUS = 1e-3


def _phi1(z):
    """(exp(z) - 1) / z, continuous at z = 0 (value 1), safe to differentiate."""
    small = jnp.abs(z) < _SERIES_RADIUS
    z_safe = jnp.where(small, jnp.ones_like(z), z)
    exact = jnp.expm1(z_safe) / z_safe if not jnp.iscomplexobj(z) else (jnp.exp(z_safe) - 1) / z_safe
    series = 1 + z / 2 + z * z / 6 + z * z * z / 24
    return jnp.where(small, series, exact)


def discretize(Lambda, step, method: str = "zoh"):
    """Discretize the diagonal system ``h' = Lambda h + B u`` with time step ``step``.

    Args:
      Lambda: (...) complex or real, continuous-time eigenvalues.
      step: (...) positive, broadcast against ``Lambda``.
      method: "zoh" or "bilinear".

    Returns:
      (Lambda_bar, B_factor), both of the broadcast shape, with ``B_bar = B_factor * B``:
        zoh:      Lambda_bar = exp(step Lambda),  B_factor = (Lambda_bar - 1) / Lambda
                  (= step * (exp(z) - 1) / z with z = step Lambda, so Lambda = 0 gives step);
        bilinear: Lambda_bar = (1 + step Lambda / 2) / (1 - step Lambda / 2),
                  B_factor = step / (1 - step Lambda / 2).
    """
    check_choice("discretization method", method, DISCRETIZATIONS)
    Lambda = jnp.asarray(Lambda)
    step = jnp.asarray(step)
    if method == "zoh":
        z = step * Lambda
        return jnp.exp(z), step * _phi1(z)
    half = step * Lambda / 2
    denom = 1 - half
    return (1 + half) / denom, step / denom
