"""Real-arithmetic projections between real features and complex states, against loops."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from ssm_jax.kernels import diagonal_readout, input_projection, output_projection, scaled_input

from .reference import crandn


def test_input_projection_matches_a_loop():
    rng = np.random.default_rng(0)
    u, B = rng.standard_normal((2, 5, 3)), crandn(rng, (4, 3))
    got = input_projection(jnp.asarray(u), jnp.asarray(B))
    chex.assert_shape(got, (2, 5, 4))
    chex.assert_type(got, jnp.complex128)
    expected = np.zeros((2, 5, 4), complex)
    for i in range(2):
        for t in range(5):
            for m in range(4):
                expected[i, t, m] = sum(B[m, h] * u[i, t, h] for h in range(3))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_output_projection_matches_a_loop(scale):
    rng = np.random.default_rng(1)
    x, C = crandn(rng, (3, 6, 4)), crandn(rng, (2, 4))
    got = output_projection(jnp.asarray(x), jnp.asarray(C), scale)
    chex.assert_shape(got, (3, 6, 2))
    chex.assert_type(got, jnp.float64)
    expected = np.zeros((3, 6, 2))
    for i in range(3):
        for t in range(6):
            for h in range(2):
                expected[i, t, h] = scale * sum(C[h, m] * x[i, t, m] for m in range(4)).real
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_siso_input_and_readout_match_a_loop():
    rng = np.random.default_rng(2)
    u, B, C, h = (rng.standard_normal((5, 3)), crandn(rng, (3, 4)), crandn(rng, (3, 4)),
                  crandn(rng, (5, 3, 4)))
    bu = scaled_input(jnp.asarray(u), jnp.asarray(B))
    y = diagonal_readout(jnp.asarray(h), jnp.asarray(C), 2.0)
    for t in range(5):
        for k in range(3):
            for n in range(4):
                np.testing.assert_allclose(bu[t, k, n], B[k, n] * u[t, k], rtol=1e-12)
            np.testing.assert_allclose(y[t, k], 2 * sum(C[k, n] * h[t, k, n] for n in range(4)).real,
                                       rtol=1e-12)


def test_projection_gradients():
    rng = np.random.default_rng(3)
    u = jnp.asarray(rng.standard_normal((4, 3)))
    B_re, B_im = (jnp.asarray(rng.standard_normal((2, 3))) for _ in range(2))
    C_re, C_im = (jnp.asarray(rng.standard_normal((3, 2))) for _ in range(2))

    def f(u, B_re, B_im, C_re, C_im):
        x = input_projection(u, B_re + 1j * B_im)
        return jnp.sum(output_projection(x * x, C_re + 1j * C_im, 2.0) ** 2)

    check_grads(f, (u, B_re, B_im, C_re, C_im), order=2, modes=["rev"])
