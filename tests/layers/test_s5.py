"""S5 layer against a naive loop; kernel, bidirectional, initialization."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssm_jax.kernels import hippo_normal
from ssm_jax.layers import S5


def naive_s5(params, u, *, conj_sym=True, bidirectional=False):
    p = {k: np.asarray(v) for k, v in params.items()}
    Lam = p["Lambda_re"] + 1j * p["Lambda_im"]
    dt = np.exp(p["log_step"])
    Lb = np.exp(dt * Lam)
    Bb = ((Lb - 1) / Lam)[:, None] * (p["B"][..., 0] + 1j * p["B"][..., 1])
    scale = 2.0 if conj_sym else 1.0
    u = np.asarray(u)
    Bsz, L, H = u.shape
    y = p["D"] * u
    dirs = [("C", range(L))] + ([("C_rev", range(L - 1, -1, -1))] if bidirectional else [])
    for name, times in dirs:
        C = p[name][..., 0] + 1j * p[name][..., 1]
        for b in range(Bsz):
            x = np.zeros(Lam.shape, complex)
            for t in times:
                x = Lb * x + Bb @ u[b, t]
                y[b, t] += scale * (C @ x).real
    return y


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("method", ["sequential", "associative"])
def test_matches_naive_loop(x64, bidirectional, method):
    layer = S5(features=3, d_state=8, blocks=2, bidirectional=bidirectional, scan_method=method,
               param_dtype=jnp.float64)
    u = jax.random.normal(jax.random.key(0), (2, 13, 3), jnp.float64)
    v = layer.init(jax.random.key(1), u)
    y = layer.apply(v, u)
    chex.assert_shape(y, (2, 13, 3))
    np.testing.assert_allclose(y, naive_s5(v["params"], u, bidirectional=bidirectional),
                               rtol=1e-9, atol=1e-10)


def test_kernel_reproduces_output(x64):
    layer = S5(features=2, d_state=4, param_dtype=jnp.float64)
    u = jax.random.normal(jax.random.key(0), (1, 10, 2), jnp.float64)
    v = layer.init(jax.random.key(1), u)
    y, st = layer.apply(v, u, mutable=["intermediates"])
    K = np.asarray(st["intermediates"]["kernel"][0])
    chex.assert_shape(K, (2, 2, 10))
    expected = np.asarray(v["params"]["D"]) * np.asarray(u[0])
    for t in range(10):
        for s in range(t + 1):
            expected[t] += K[:, :, t - s] @ np.asarray(u[0, s])
    np.testing.assert_allclose(y[0], expected, rtol=1e-9, atol=1e-10)


def test_initialization_is_hippo_n(x64):
    layer = S5(features=3, d_state=8, blocks=1, conj_sym=False, param_dtype=jnp.float64)
    v = layer.init(jax.random.key(0), jnp.ones((1, 4, 3)))["params"]
    Lam = np.asarray(v["Lambda_re"]) + 1j * np.asarray(v["Lambda_im"])
    np.testing.assert_allclose(Lam.real, -0.5, atol=1e-12)
    # The eigenvalues are those of the HiPPO-LegS normal part.
    eig = np.linalg.eigvals(hippo_normal(8))
    np.testing.assert_allclose(np.sort(Lam.imag), np.sort(eig.imag), atol=1e-9)


def test_bad_input():
    with pytest.raises(ValueError, match="divisible by blocks"):
        S5(features=3, d_state=8, blocks=3).init(jax.random.key(0), jnp.ones((1, 4, 3)))
    with pytest.raises(ValueError, match=r"u must be \(batch, L, H\)"):
        S5(features=3, d_state=8).init(jax.random.key(0), jnp.ones((4, 3)))
