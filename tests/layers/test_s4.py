"""S4 (DPLR) layer: conv, recurrent and step modes agree with each other and with a dense loop;
it is a model.layer of SequenceModel, and the measure and the init rule work for it."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssm_jax.bound import layer_measures, rescale_init
from ssm_jax.layers import get_layer
from ssm_jax.layers.s4 import S4
from ssm_jax.models import SequenceModel

B, L, H, N = 2, 12, 3, 6


@pytest.fixture(autouse=True)
def x64():
    previous = jax.config.values["jax_enable_x64"]
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


def dense_s4(p, u, bidirectional=False):
    """Dense A = diag(Lambda) - P P^H, bilinear; Ct -> C = Ct (I - Abar^L)^{-1}; loop (NumPy)."""
    p = {k: np.asarray(v) for k, v in p.items()}
    Bsz, L, Hn = u.shape

    def direction(sfx, seq):
        y = np.zeros((Bsz, L, Hn))
        for h in range(Hn):
            c = lambda n: p[n + "_re" + sfx][h] + 1j * p[n + "_im" + sfx][h]
            dt = np.exp(p["log_step" + sfx][h])
            A = np.diag(c("Lambda")) - np.outer(c("P"), c("P").conj())
            I = np.eye(len(A))
            Abar = np.linalg.solve(I - dt / 2 * A, I + dt / 2 * A)
            Bbar = np.linalg.solve(I - dt / 2 * A, dt * c("B"))
            C = np.linalg.solve((I - np.linalg.matrix_power(Abar, L)).T, c("C"))
            for b in range(Bsz):
                x = np.zeros(len(A), complex)
                for t in range(L):
                    x = Abar @ x + Bbar * seq[b, t, h]
                    y[b, t, h] = 2 * (C @ x).real
        return y

    y = direction("", np.asarray(u))
    if bidirectional:
        y = y + direction("_rev", np.asarray(u)[:, ::-1])[:, ::-1]
    return y + p["D"] * np.asarray(u)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_conv_recurrent_and_dense_loop_agree(bidirectional):
    layer = S4(H, d_state=N, bidirectional=bidirectional, param_dtype=jnp.float64)
    u = jax.random.normal(jax.random.PRNGKey(1), (B, L, H), jnp.float64)
    params = layer.init(jax.random.PRNGKey(0), u)
    y_conv = layer.apply(params, u)
    y_rec = layer.apply(params, u, mode="recurrent")
    chex.assert_shape(y_conv, (B, L, H))
    chex.assert_type(y_conv, jnp.float64)
    np.testing.assert_allclose(y_conv, y_rec, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(y_conv, dense_s4(params["params"], u, bidirectional), rtol=1e-8, atol=1e-10)


def test_step_mode_equals_conv_mode():
    layer = S4(H, d_state=N, param_dtype=jnp.float64)
    u = jax.random.normal(jax.random.PRNGKey(2), (B, L, H), jnp.float64)
    params = layer.init(jax.random.PRNGKey(0), u)
    state = layer.init_state(B)
    ys = []
    for t in range(L):
        state, y = layer.apply(params, state, u[:, t], length=L, method=layer.step)
        ys.append(y)
    np.testing.assert_allclose(jnp.stack(ys, 1), layer.apply(params, u), rtol=1e-8, atol=1e-10)


def test_hippo_init_and_protocol():
    layer = S4(H, d_state=N)
    params = layer.init(jax.random.PRNGKey(0), jnp.zeros((1, L, H)))["params"]
    Lambda = S4.eigenvalues(params)
    chex.assert_shape(Lambda, (H, N // 2))
    np.testing.assert_allclose(np.asarray(Lambda).real, -0.5, atol=1e-6)
    new = S4.with_step_sizes(params, 0.05)
    np.testing.assert_allclose(S4.step_sizes(new), 0.05, rtol=1e-6)
    assert get_layer("s4") is S4
    assert {"Lambda_re", "P_re", "B_re", "log_step"} <= S4.core_params
    assert {"C_re", "C_im"} <= S4.output_params
    with pytest.raises(ValueError, match="d_state"):
        S4(H, d_state=5).init(jax.random.PRNGKey(0), jnp.zeros((1, L, H)))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_sequence_model_measure_and_init_rule(bidirectional):
    model = SequenceModel(2, d_model=H, n_layers=2, layer="s4",
                          ssm={"d_state": N, "param_dtype": jnp.float64, "bidirectional": bidirectional})
    x = jax.random.normal(jax.random.PRNGKey(3), (8, L, 2), jnp.float64) + 0.3
    variables = model.init(jax.random.PRNGKey(0), x)
    assert model.apply(variables, x).shape == (8, 2)
    before = layer_measures(model, variables, x, readout="mean")
    assert max(float(jnp.abs(t - 1).max()) for t in before) > 0.1
    scaled = rescale_init(model, variables, x, readout="mean")
    for tau in layer_measures(model, scaled, x, readout="mean"):
        np.testing.assert_allclose(tau, 1.0, atol=1e-6)
