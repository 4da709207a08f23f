"""Tests of the initializers in ssm_jax.kernels (init.py) against their defining formulas."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssm_jax.kernels import (hippo_legs, hippo_n, init_Lambda, log_step_uniform, s4d_inv,
                             s4d_lin, s4d_real)

from .reference import hippo_legs_reference, hippo_normal_reference


def np_(x):
    return np.asarray(x)


# --------------------------------------------------------------------------- HiPPO-LegS
@pytest.mark.parametrize("N", [1, 2, 5, 16])
def test_hippo_legs_entries(N):
    A, B = map(np_, hippo_legs(N))
    assert A.shape == (N, N) and B.shape == (N,)
    assert not np.iscomplexobj(A) and not np.iscomplexobj(B)
    A_ref, B_ref = hippo_legs_reference(N)
    np.testing.assert_allclose(A, A_ref, rtol=1e-12, atol=0)
    np.testing.assert_allclose(B, B_ref, rtol=1e-12, atol=0)


def test_hippo_legs_known_values():
    A, B = map(np_, hippo_legs(3))
    s3, s5, s15 = np.sqrt(3), np.sqrt(5), np.sqrt(15)
    np.testing.assert_allclose(A, [[-1, 0, 0], [-s3, -2, 0], [-s5, -s15, -3]], rtol=1e-12)
    np.testing.assert_allclose(B, [1, s3, s5], rtol=1e-12)


def test_normal_plus_low_rank_structure():
    """The reference S = A + P P^T is -1/2 I plus a skew-symmetric matrix (test sanity)."""
    N = 8
    A, _ = map(np_, hippo_legs(N))
    P = np.sqrt(np.arange(N) + 0.5)
    S = A + np.outer(P, P)
    W = S + 0.5 * np.eye(N)
    np.testing.assert_allclose(W, -W.T, atol=1e-12)
    np.testing.assert_allclose(S, hippo_normal_reference(N), atol=1e-12)


# --------------------------------------------------------------------------- HiPPO-N
def reference_spectrum(N):
    """Eigenvalues of S = -1/2 I + W (W skew) from the Hermitian matrix iW, sorted by imag."""
    S = hippo_normal_reference(N)
    W = S + 0.5 * np.eye(N)
    mu = np.linalg.eigvalsh(1j * W)  # W v = -i mu v
    eig = -0.5 - 1j * mu
    return eig[np.argsort(eig.imag)]


@pytest.mark.parametrize("N", [2, 4, 8, 16, 64])
def test_hippo_n_full(N):
    Lambda, V = map(np_, hippo_n(N, conj_sym=False))
    assert Lambda.shape == (N,) and V.shape == (N, N)
    S = hippo_normal_reference(N)
    np.testing.assert_allclose(Lambda.real, -0.5, rtol=0, atol=1e-10)
    np.testing.assert_allclose(V.conj().T @ V, np.eye(N), rtol=0, atol=1e-10)
    np.testing.assert_allclose(V @ np.diag(Lambda) @ V.conj().T, S, rtol=0, atol=1e-9 * N)
    np.testing.assert_allclose(S @ V, V * Lambda[None, :], rtol=0, atol=1e-9 * N)
    np.testing.assert_allclose(np.sort(Lambda.imag),
                               reference_spectrum(N).imag, rtol=1e-10, atol=1e-9)
    # the spectrum of a real matrix is closed under conjugation
    np.testing.assert_allclose(np.sort(Lambda.imag), np.sort(-Lambda.imag), atol=1e-9)


@pytest.mark.parametrize("N", [2, 4, 8, 16, 64])
def test_hippo_n_conj_sym_half(N):
    Lambda_half, V_half = map(np_, hippo_n(N, conj_sym=True))
    assert Lambda_half.shape == (N // 2,) and V_half.shape == (N, N // 2)
    S = hippo_normal_reference(N)
    np.testing.assert_allclose(Lambda_half.real, -0.5, rtol=0, atol=1e-10)
    assert np.all(Lambda_half.imag > 0), Lambda_half
    assert np.all(np.diff(Lambda_half.imag) >= 0), "not sorted by imaginary part ascending"
    # orthonormal eigenvectors; together with their conjugates they rebuild the real S
    np.testing.assert_allclose(V_half.conj().T @ V_half, np.eye(N // 2), rtol=0, atol=1e-10)
    np.testing.assert_allclose(S @ V_half, V_half * Lambda_half[None, :], rtol=0, atol=1e-9 * N)
    rebuilt = 2.0 * np.real(V_half @ np.diag(Lambda_half) @ V_half.conj().T)
    np.testing.assert_allclose(rebuilt, S, rtol=0, atol=1e-9 * N)
    # the half and its conjugates are the full spectrum
    full = np.concatenate([Lambda_half, np.conj(Lambda_half)])
    np.testing.assert_allclose(np.sort(full.imag), reference_spectrum(N).imag,
                               rtol=1e-10, atol=1e-9)
    Lambda_full, _ = map(np_, hippo_n(N, conj_sym=False))
    np.testing.assert_allclose(np.sort(full.imag), np.sort(Lambda_full.imag), atol=1e-9)


def test_hippo_n_default_is_conj_sym():
    Lambda, V = map(np_, hippo_n(8))
    assert Lambda.shape == (4,) and V.shape == (8, 4)


# --------------------------------------------------------------------------- S4D
@pytest.mark.parametrize("n", [1, 4, 32])
def test_s4d_lin(n):
    Lambda = np_(s4d_lin(n))
    assert Lambda.shape == (n,) and np.iscomplexobj(Lambda)
    expected = np.array([complex(-0.5, np.pi * k) for k in range(n)])
    np.testing.assert_allclose(Lambda, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [1, 4, 32])
def test_s4d_inv_default_N(n):
    Lambda = np_(s4d_inv(n))
    assert Lambda.shape == (n,) and np.iscomplexobj(Lambda)
    N = 2 * n
    expected = np.array([complex(-0.5, (N / np.pi) * (N / (2 * k + 1) - 1)) for k in range(n)])
    np.testing.assert_allclose(Lambda, expected, rtol=1e-12, atol=1e-12)


def test_s4d_inv_explicit_N():
    n, N = 5, 64
    Lambda = np_(s4d_inv(n, N=N))
    expected = np.array([complex(-0.5, (N / np.pi) * (N / (2 * k + 1) - 1)) for k in range(n)])
    np.testing.assert_allclose(Lambda, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np_(s4d_inv(n, 64)), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [1, 4, 32])
def test_s4d_real(n):
    Lambda = np_(s4d_real(n))
    assert Lambda.shape == (n,) and np.iscomplexobj(Lambda)
    expected = np.array([complex(-(k + 1), 0.0) for k in range(n)])
    np.testing.assert_array_equal(Lambda, expected)


# --------------------------------------------------------------------------- init_Lambda
@pytest.mark.parametrize("n", [1, 3, 16])
def test_init_Lambda_dispatch(n):
    N = 2 * n
    formulas = {
        "lin": [complex(-0.5, np.pi * k) for k in range(n)],
        "inv": [complex(-0.5, (N / np.pi) * (N / (2 * k + 1) - 1)) for k in range(n)],
        "real": [complex(-(k + 1), 0.0) for k in range(n)],
    }
    for name, expected in formulas.items():
        Lambda = np_(init_Lambda(name, n))
        assert Lambda.shape == (n,) and np.iscomplexobj(Lambda), name
        np.testing.assert_allclose(Lambda, np.array(expected), rtol=1e-12, atol=1e-12)
    legs = np_(init_Lambda("legs", n))
    assert legs.shape == (n,) and np.iscomplexobj(legs)
    np.testing.assert_allclose(legs, np_(hippo_n(2 * n, conj_sym=True)[0])[:n],
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(legs.real, -0.5, atol=1e-10)
    assert np.all(legs.imag > 0)
    # one of each conjugate pair of the spectrum of the normal HiPPO matrix of size 2n
    np.testing.assert_allclose(np.sort(legs.imag), reference_spectrum(2 * n).imag[n:],
                               rtol=1e-10, atol=1e-9)


def test_init_Lambda_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as excinfo:
        init_Lambda("fourier-ish", 4)
    for name in ("legs", "lin", "inv", "real"):
        assert name in str(excinfo.value), str(excinfo.value)


# --------------------------------------------------------------------------- log step
def test_log_step_uniform_range_and_distribution():
    dt_min, dt_max = 1e-3, 1e-1
    lo, hi = np.log(dt_min), np.log(dt_max)
    log_step = np_(log_step_uniform(jax.random.PRNGKey(0), (10_000,)))  # default bounds
    assert log_step.shape == (10_000,)
    # the result may be float32: allow one float32 rounding at the ends
    tol = 1e-6 * max(abs(lo), abs(hi))
    assert np.all(log_step >= lo - tol) and np.all(log_step <= hi + tol)
    width = hi - lo
    # uniform on [lo, hi]: mean, standard deviation and quartiles
    assert abs(log_step.mean() - (lo + hi) / 2) < 0.05 * width
    assert abs(log_step.std() - width / np.sqrt(12)) < 0.05 * width / np.sqrt(12)
    for q in (0.25, 0.5, 0.75):
        assert abs(np.quantile(log_step, q) - (lo + q * width)) < 0.03 * width
    steps = np.exp(log_step)
    assert steps.min() >= dt_min * (1 - 1e-5) and steps.max() <= dt_max * (1 + 1e-5)


@pytest.mark.parametrize("shape", [(3,), (4, 5), ()])
def test_log_step_uniform_custom_bounds_and_shape(shape):
    dt_min, dt_max = 1e-4, 0.5
    out = np_(log_step_uniform(jax.random.PRNGKey(1), shape, dt_min=dt_min, dt_max=dt_max))
    assert out.shape == shape
    tol = 1e-6 * abs(np.log(dt_min))
    assert np.all(out >= np.log(dt_min) - tol) and np.all(out <= np.log(dt_max) + tol)


def test_log_step_uniform_custom_bounds_distribution():
    dt_min, dt_max = 1e-4, 0.5
    out = np_(log_step_uniform(jax.random.PRNGKey(2), (10_000,), dt_min=dt_min, dt_max=dt_max))
    lo, hi = np.log(dt_min), np.log(dt_max)
    assert abs(out.mean() - (lo + hi) / 2) < 0.05 * (hi - lo)


def test_log_step_uniform_deterministic_in_key():
    a = np_(log_step_uniform(jax.random.PRNGKey(3), (50,)))
    b = np_(log_step_uniform(jax.random.PRNGKey(3), (50,)))
    c = np_(log_step_uniform(jax.random.PRNGKey(4), (50,)))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_log_step_uniform_equal_bounds():
    out = np_(log_step_uniform(jax.random.PRNGKey(5), (7,), dt_min=0.01, dt_max=0.01))
    np.testing.assert_allclose(out, np.log(0.01), rtol=1e-6)


@pytest.mark.parametrize("dt_min,dt_max", [(0.0, 0.1), (-1e-3, 0.1), (0.2, 0.1)])
def test_log_step_uniform_bad_bounds(dt_min, dt_max):
    with pytest.raises(ValueError):
        log_step_uniform(jax.random.PRNGKey(0), (4,), dt_min=dt_min, dt_max=dt_max)


@pytest.mark.float32
def test_log_step_uniform_float32():
    out = log_step_uniform(jax.random.PRNGKey(0), (6, 2))
    chex.assert_type(out, jnp.float32)
    chex.assert_shape(out, (6, 2))


def test_log_step_uniform_under_jit_and_vmap():
    keys = jax.random.split(jax.random.PRNGKey(6), 3)
    f = jax.jit(lambda k: log_step_uniform(k, (5,)))
    batched = jax.vmap(lambda k: log_step_uniform(k, (5,)))(keys)
    chex.assert_shape(batched, (3, 5))
    for i in range(3):
        np.testing.assert_allclose(np_(f(keys[i])), np_(batched[i]), rtol=1e-12)
