"""Paper 2's autocorrelation timescale and feature Gram matrix against NumPy (float64)."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssm_jax.bound.autocorrelation import (
    autocorrelation_timescale, condition_number, feature_gram, feature_matrix,
    sample_feature_gram, sample_features, top_eigenvalue,
)


def ar1(n, L, phi, seed=0):
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(n, L))
    x = np.zeros((n, L))
    x[:, 0] = e[:, 0] / np.sqrt(1 - phi ** 2)
    for t in range(1, L):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x


def numpy_lambda_max(x):
    R = x.T @ x / x.shape[0]
    return np.linalg.eigvalsh(R)[-1]


@pytest.mark.parametrize("phi", [0.0, 0.9])
def test_top_eigenvalue_matches_numpy(phi):
    x = ar1(40, 24, phi, seed=3)
    lam = top_eigenvalue(jnp.asarray(x), num_iters=5000, tol=1e-14)
    chex.assert_shape(lam, ())
    assert lam.dtype == jnp.float64
    np.testing.assert_allclose(lam, numpy_lambda_max(x), rtol=1e-8)


def test_timescale_formula_and_pooling():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 20, 3)) * np.array([0.5, 1.0, 3.0])
    L = 20
    delta = autocorrelation_timescale(jnp.asarray(x), kappa=2.0, num_iters=5000, tol=1e-14)
    pooled = np.concatenate([x[:, :, h] for h in range(3)], axis=0)  # channels as samples
    np.testing.assert_allclose(delta, 2.0 / np.sqrt(L * numpy_lambda_max(pooled)), rtol=1e-7)
    per = autocorrelation_timescale(jnp.asarray(x), kappa=2.0, per_channel=True,
                                    num_iters=5000, tol=1e-14)
    chex.assert_shape(per, (3,))
    expected = [2.0 / np.sqrt(L * numpy_lambda_max(x[:, :, h])) for h in range(3)]
    np.testing.assert_allclose(per, expected, rtol=1e-7)
    assert per[0] > per[1] > per[2]  # larger signals get shorter timescales


def test_timescale_limits_white_and_constant():
    L = 64
    # Exactly white: rows of sqrt(n) * an orthogonal matrix give R = I.
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(L, L)))
    white = np.sqrt(L) * q
    np.testing.assert_allclose(autocorrelation_timescale(jnp.asarray(white)), 1 / np.sqrt(L),
                               rtol=1e-6)
    # Constant in time: x_i = c_i 1 with E c^2 = 1 gives R = 1 1^T, lambda_max = L.
    c = np.random.default_rng(2).normal(size=(50, 1))
    const = c / np.sqrt(np.mean(c ** 2)) * np.ones((1, L))
    np.testing.assert_allclose(autocorrelation_timescale(jnp.asarray(const)), 1 / L, rtol=1e-9)


def test_timescale_long_sequences_in_little_memory():
    """L = 16384 works without an L x L matrix (which would take 2 GiB in float64)."""
    L = 16384
    x = np.random.default_rng(0).normal(size=(4, L)) * np.array([[1.0], [1.5], [2.0], [3.0]])
    lam = top_eigenvalue(jnp.asarray(x), num_iters=200)
    # R = X^T X / n has rank 4: its nonzero eigenvalues are those of X X^T / n.
    expected = np.linalg.eigvalsh(x @ x.T / 4)[-1]
    np.testing.assert_allclose(lam, expected, rtol=1e-8)


def test_timescale_bad_input():
    with pytest.raises(ValueError, match="per_channel"):
        autocorrelation_timescale(jnp.ones((3, 5)), per_channel=True)
    with pytest.raises(ValueError, match="kappa"):
        autocorrelation_timescale(jnp.ones((3, 5)), kappa=0.0)
    with pytest.raises(ValueError, match="x must be"):
        autocorrelation_timescale(jnp.ones((3,)))


def numpy_V(Lambda_bar, B_bar, L):
    V = np.zeros((len(Lambda_bar), L), complex)
    for j in range(len(Lambda_bar)):
        for s in range(L):
            V[j, s] = B_bar[j] * Lambda_bar[j] ** (L - 1 - s)
    return V


def test_feature_matrix_is_the_final_state():
    rng = np.random.default_rng(0)
    m, L = 5, 17
    Lambda_bar = 0.97 * np.exp(1j * rng.uniform(0, np.pi, m))
    B_bar = rng.normal(size=m) + 1j * rng.normal(size=m)
    V = feature_matrix(jnp.asarray(Lambda_bar), jnp.asarray(B_bar), L)
    chex.assert_shape(V, (m, L))
    np.testing.assert_allclose(V, numpy_V(Lambda_bar, B_bar, L), rtol=1e-12)
    # h_L of the recurrence h_t = Lambda_bar h_{t-1} + B_bar x_t (naive loop).
    x = rng.normal(size=L)
    h = np.zeros(m, complex)
    for t in range(L):
        h = Lambda_bar * h + B_bar * x[t]
    np.testing.assert_allclose(np.asarray(V) @ x, h, rtol=1e-12)


def test_feature_gram_matches_numpy_and_samples():
    rng = np.random.default_rng(1)
    m, L, n = 4, 12, 30
    Lambda_bar = np.exp(-0.05 + 1j * rng.uniform(0, 3, m))
    B_bar = rng.normal(size=m) + 1j * rng.normal(size=m)
    x = ar1(n, L, 0.8, seed=4)
    R = x.T @ x / n
    V = numpy_V(Lambda_bar, B_bar, L)
    G = feature_gram(jnp.asarray(Lambda_bar), jnp.asarray(B_bar), jnp.asarray(R))
    chex.assert_shape(G, (m, m))
    np.testing.assert_allclose(G, V @ R @ V.conj().T, rtol=1e-10)
    Gs = sample_feature_gram(jnp.asarray(Lambda_bar), jnp.asarray(B_bar), jnp.asarray(x))
    np.testing.assert_allclose(Gs, G, rtol=1e-10)
    phi = sample_features(jnp.asarray(Lambda_bar), jnp.asarray(B_bar), jnp.asarray(x))
    np.testing.assert_allclose(phi, x @ V.T, rtol=1e-10)
    np.testing.assert_allclose(condition_number(G), np.linalg.cond(np.asarray(G)), rtol=1e-6)


def test_dft_grid_white_input_gives_L_identity():
    L, m = 32, 8
    Lambda_bar = np.exp(2j * np.pi * np.arange(m) / L)
    G = feature_gram(jnp.asarray(Lambda_bar), jnp.ones(m, complex), jnp.eye(L))
    np.testing.assert_allclose(G, L * np.eye(m), atol=1e-10)
    np.testing.assert_allclose(condition_number(G), 1.0, rtol=1e-10)
    # Off the grid (half the spacing) the features overlap and kappa grows.
    G_half = feature_gram(jnp.asarray(Lambda_bar ** 0.5), jnp.ones(m, complex), jnp.eye(L))
    assert condition_number(G_half) > 1.5


def test_condition_number_of_singular_gram_is_inf():
    G = jnp.ones((3, 3), jnp.complex128)
    assert np.isinf(condition_number(G)) or condition_number(G) > 1e15


def test_jit_and_vmap():
    rng = np.random.default_rng(2)
    Lb = jnp.asarray(np.exp(1j * rng.uniform(0, 3, (3, 4))))
    Bb = jnp.ones((3, 4), complex)
    G = jax.jit(jax.vmap(lambda a, b: feature_gram(a, b, jnp.eye(6))))(Lb, Bb)
    chex.assert_shape(G, (3, 4, 4))
    np.testing.assert_allclose(G[1], feature_gram(Lb[1], Bb[1], jnp.eye(6)), rtol=1e-12)
