"""The measures against hand-written loops and explicit covariance matrices."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssm_jax.bound import (
    MEASURES, batch_measure, covariance_measure, final_time_kernel, generalization_measure,
)
from ssm_jax.layers import S4D, S5


def rand(shape, seed):
    return np.random.default_rng(seed).normal(size=shape)


def batch(b, L, H, seed=0):
    """Correlated in time, time-varying mean: a random walk plus a trend."""
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(size=(b, L, H)), axis=1) * 0.3 + np.linspace(-1, 2, L)[:, None]


def as_mimo(K):
    """(H, L) SISO kernels as the diagonal (H, H, L) MIMO kernel."""
    if K.ndim == 3:
        return K
    H, L = K.shape
    out = np.zeros((H, H, L))
    out[np.arange(H), np.arange(H)] = K
    return out


def loop_paper(K, mean, std):
    K = as_mimo(np.asarray(K))
    H_out, H_in, L = K.shape
    tau = np.zeros(H_out)
    for o in range(H_out):
        spread = centre = 0.0
        for i in range(H_in):
            for s in range(L):
                spread += abs(K[o, i, L - 1 - s]) * std[s, i]
                centre += K[o, i, L - 1 - s] * mean[s, i]
        tau[o] = (spread + abs(centre)) ** 2
    return tau


def loop_covariance(K, x):
    """With the explicit (L*H_in) x (L*H_in) covariance matrix of the batch."""
    K = as_mimo(np.asarray(K))
    H_out, H_in, L = K.shape
    X = x.reshape(x.shape[0], L * H_in)  # index s * H_in + i
    cov = np.cov(X.T, bias=True)
    mu = X.mean(0)
    tau = np.zeros(H_out)
    for o in range(H_out):
        k = np.array([K[o, i, L - 1 - s] for s in range(L) for i in range(H_in)])
        tau[o] = (np.sqrt(k @ cov @ k) + abs(k @ mu)) ** 2
    return tau


KERNEL_SHAPES = [(3, 10), (3, 2, 10)]  # S4D (H, L); S5 (H_out, H_in, L)


@pytest.mark.parametrize("shape", KERNEL_SHAPES)
def test_paper_measure_matches_loop(shape):
    K = rand(shape, 1)
    x = batch(7, shape[-1], shape[-2] if len(shape) == 3 else shape[0])
    mean, std = x.mean(0), x.std(0)
    expected = loop_paper(K, mean, std)
    np.testing.assert_allclose(generalization_measure(K, mean, std), expected, rtol=1e-12)
    np.testing.assert_allclose(batch_measure(K, x, measure="paper"), expected, rtol=1e-12)


@pytest.mark.parametrize("shape", KERNEL_SHAPES)
def test_covariance_measure_matches_explicit_covariance(shape):
    K = rand(shape, 2)
    x = batch(9, shape[-1], shape[-2] if len(shape) == 3 else shape[0], seed=3)
    expected = loop_covariance(K, x)
    np.testing.assert_allclose(covariance_measure(K, x), expected, rtol=1e-10)
    np.testing.assert_allclose(batch_measure(K, x, measure="covariance"), expected, rtol=1e-10)
    # Cauchy-Schwarz: the covariance form never exceeds the paper's form
    assert np.all(expected <= loop_paper(K, x.mean(0), x.std(0)) * (1 + 1e-12))


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("shape", KERNEL_SHAPES)
def test_scaling_the_kernel_scales_tau_by_the_square(shape, measure):
    K = rand(shape, 4)
    x = batch(5, shape[-1], shape[-2] if len(shape) == 3 else shape[0])
    tau = batch_measure(K, x, measure=measure)
    np.testing.assert_allclose(batch_measure(-2.5 * K, x, measure=measure), 6.25 * tau, rtol=1e-12)


def test_measure_under_jit_vmap_grad():
    K = jnp.asarray(rand((5, 3, 8), 5))  # 5 independent SISO layers (H=3, L=8)
    x = jnp.asarray(batch(6, 8, 3))
    f = jax.jit(jax.vmap(lambda K: jnp.sum(batch_measure(K, x, measure="covariance"))))
    assert f(K).shape == (5,)
    g = jax.grad(lambda K: jnp.sum(batch_measure(K, x)))(K[0])
    eps = 1e-6
    dK = np.zeros((3, 8))
    dK[1, 2] = eps
    fd = (jnp.sum(batch_measure(K[0] + dK, x)) - jnp.sum(batch_measure(K[0] - dK, x))) / (2 * eps)
    np.testing.assert_allclose(g[1, 2], fd, rtol=1e-6)


@pytest.mark.parametrize("layer", ["s4d", "s5"])
def test_final_time_kernel_gives_the_bidirectional_output(layer):
    """y(L-1) - D u(L-1) of a bidirectional layer is sum_s k_eff[L-1-s] u(s)."""
    H, L = 3, 12
    cls = S4D if layer == "s4d" else S5
    module = cls(features=H, d_state=4, bidirectional=True, param_dtype=jnp.float64)
    u = jnp.asarray(batch(4, L, H))

    @jax.jit  # one compilation instead of one per eager op
    def init_apply(key, u):
        variables = module.init(key, u)
        return variables, *module.apply(variables, u, mutable=["intermediates"])

    variables, y, state = init_apply(jax.random.PRNGKey(0), u)
    sown = state["intermediates"]
    K = final_time_kernel(sown["kernel"][0], sown["kernel_rev"][0])
    np.testing.assert_allclose(K[..., 1:], sown["kernel"][0][..., 1:])  # only lag 0 changes
    final = y[:, -1] - variables["params"]["D"] * u[:, -1]
    k = K[..., ::-1]
    expected = (jnp.einsum("hs,bsh->bh", k, u) if K.ndim == 2 else jnp.einsum("ois,bsi->bo", k, u))
    np.testing.assert_allclose(final, expected, rtol=1e-9, atol=1e-12)


def test_mismatched_shapes_name_both():
    K = np.ones((4, 16))
    with pytest.raises(ValueError, match=r"K has shape \(4, 16\) but mean has shape \(10, 4\)"):
        generalization_measure(K, np.ones((10, 4)), np.ones((16, 4)))
    with pytest.raises(ValueError, match=r"K has shape \(4, 16\) but std has shape \(16, 3\)"):
        generalization_measure(K, np.ones((16, 4)), np.ones((16, 3)))
    with pytest.raises(ValueError, match=r"K has shape \(3, 2, 16\) but mean has shape \(16, 3\)"):
        generalization_measure(np.ones((3, 2, 16)), np.ones((16, 3)), np.ones((16, 3)))
    with pytest.raises(ValueError, match=r"K has shape \(4, 16\) but x has shape \(5, 8, 4\)"):
        batch_measure(K, np.ones((5, 8, 4)), measure="covariance")
    with pytest.raises(ValueError, match=r"K must be .*got shape \(16,\)"):
        generalization_measure(np.ones(16), np.ones((16, 1)), np.ones((16, 1)))
    with pytest.raises(ValueError, match=r"K has shape \(4, 16\) but K_rev has shape \(4, 8\)"):
        final_time_kernel(K, np.ones((4, 8)))


def test_unknown_measure_lists_the_valid_names():
    K, stat = np.ones((2, 3)), np.ones((3, 2))
    for call in (lambda: generalization_measure(K, stat, stat, measure="l2"),
                 lambda: batch_measure(K, np.ones((4, 3, 2)), measure="l2")):
        with pytest.raises(ValueError, match="unknown measure 'l2'; valid names: 'paper', 'covariance'"):
            call()
    with pytest.raises(ValueError, match="needs the batch.*batch_measure"):
        generalization_measure(K, stat, stat, measure="covariance")
