"""S4D layer: conv, recurrent and step modes agree with each other and with a naive loop."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssm_jax.layers import S4D


def naive_s4d(params, u, *, conj_sym=True, bidirectional=False, discretization="zoh"):
    """Python loop over time: discretize each mode, run the recurrence, read out (NumPy)."""
    p = {k: np.asarray(v) for k, v in params.items()}
    Bsz, L, H = u.shape
    scale = 2.0 if conj_sym else 1.0

    def direction(sfx, seq):
        Lam = p["Lambda_re" + sfx] + 1j * p["Lambda_im" + sfx]
        dt = np.exp(p["log_step" + sfx])[:, None]
        if discretization == "zoh":
            Lb = np.exp(dt * Lam)
            Bb = (Lb - 1) / Lam * (p["B_re" + sfx] + 1j * p["B_im" + sfx])
        else:
            Lb = (1 + dt * Lam / 2) / (1 - dt * Lam / 2)
            Bb = dt / (1 - dt * Lam / 2) * (p["B_re" + sfx] + 1j * p["B_im" + sfx])
        C = p["C_re" + sfx] + 1j * p["C_im" + sfx]
        y = np.zeros((Bsz, L, H))
        for b in range(Bsz):
            h = np.zeros_like(Lb)
            for t in range(L):
                h = Lb * h + Bb * seq[b, t][:, None]
                y[b, t] = scale * (C * h).sum(-1).real
        return y

    u = np.asarray(u)
    y = direction("", u)
    if bidirectional:
        y = y + direction("_rev", u[:, ::-1])[:, ::-1]
    return y + p["D"] * u


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("init", ["legs", "lin", "inv", "real"])
def test_modes_match_naive_loop(x64, bidirectional, init):
    layer = S4D(features=3, d_state=8, ssm_init=init, bidirectional=bidirectional,
                param_dtype=jnp.float64)
    u = jax.random.normal(jax.random.key(0), (2, 17, 3), jnp.float64)
    v = layer.init(jax.random.key(1), u)
    expected = naive_s4d(v["params"], u, bidirectional=bidirectional)
    for mode in ("conv", "recurrent"):
        y = layer.apply(v, u, mode=mode)
        chex.assert_shape(y, (2, 17, 3))
        chex.assert_type(y, jnp.float64)
        np.testing.assert_allclose(y, expected, rtol=1e-9, atol=1e-10)


def test_bilinear_and_no_conj_sym(x64):
    layer = S4D(features=2, d_state=4, conj_sym=False, discretization="bilinear", param_dtype=jnp.float64)
    u = jax.random.normal(jax.random.key(2), (1, 11, 2), jnp.float64)
    v = layer.init(jax.random.key(3), u)
    expected = naive_s4d(v["params"], u, conj_sym=False, discretization="bilinear")
    np.testing.assert_allclose(layer.apply(v, u), expected, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(layer.apply(v, u, mode="recurrent"), expected, rtol=1e-9, atol=1e-10)


def test_step_mode_equals_conv_mode(x64):
    layer = S4D(features=4, d_state=6, param_dtype=jnp.float64)
    u = jax.random.normal(jax.random.key(0), (3, 20, 4), jnp.float64)
    v = layer.init(jax.random.key(1), u)
    state = layer.apply(v, 3, method=S4D.init_state)
    ys = []
    for t in range(u.shape[1]):
        state, y_t = layer.apply(v, state, u[:, t], method=S4D.step)
        ys.append(y_t)
    np.testing.assert_allclose(jnp.stack(ys, 1), layer.apply(v, u), rtol=1e-9, atol=1e-10)


def test_sows_input_and_kernel_in_both_modes():
    layer = S4D(features=3, d_state=4, bidirectional=True)
    u = jax.random.normal(jax.random.key(0), (2, 9, 3))
    v = layer.init(jax.random.key(1), u)
    for mode in ("conv", "recurrent"):
        _, st = layer.apply(v, u, mode=mode, mutable=["intermediates"])
        inter = st["intermediates"]
        chex.assert_shape(inter["input"][0], (2, 9, 3))
        chex.assert_shape(inter["kernel"][0], (3, 9))
        chex.assert_shape(inter["kernel_rev"][0], (3, 9))
    # Without the intermediates collection nothing is sown (and no kernel is built in recurrent mode).
    y = layer.apply(v, u, mode="recurrent")
    chex.assert_type(y, jnp.float32)


def test_float32_dtype_and_parameter_shapes():
    layer = S4D(features=5, d_state=8)
    u = jnp.ones((2, 7, 5), jnp.float32)
    v = layer.init(jax.random.key(0), u)
    shapes = jax.tree.map(jnp.shape, v["params"])
    assert shapes["Lambda_re"] == (5, 4) and shapes["C_im"] == (5, 4) and shapes["log_step"] == (5,)
    for leaf in jax.tree.leaves(v["params"]):
        chex.assert_type(leaf, jnp.float32)
    chex.assert_type(layer.apply(v, u), jnp.float32)
    step = np.exp(np.asarray(v["params"]["log_step"]))
    assert np.all((step >= 1e-3 - 1e-9) & (step <= 1e-1 + 1e-9))


def test_bad_input_errors():
    layer = S4D(features=3, d_state=4)
    with pytest.raises(ValueError, match=r"u must be \(batch, L, H\), got shape \(5, 3\)"):
        layer.init(jax.random.key(0), jnp.ones((5, 3)))
    with pytest.raises(ValueError, match=r"u\[\.\.\., :\] has shape \(4,\) but features has shape \(3,\)"):
        layer.init(jax.random.key(0), jnp.ones((1, 5, 4)))
    with pytest.raises(ValueError, match="valid names: 'legs', 'lin', 'inv', 'real'"):
        S4D(features=3, ssm_init="hippo").init(jax.random.key(0), jnp.ones((1, 5, 3)))
    with pytest.raises(ValueError, match="valid names: 'conv', 'recurrent'"):
        S4D(features=3, mode="fft").init(jax.random.key(0), jnp.ones((1, 5, 3)))
    v = layer.init(jax.random.key(0), jnp.ones((1, 5, 3)))
    with pytest.raises(ValueError, match="causal layer"):
        S4D(features=3, d_state=4, bidirectional=True).apply(
            S4D(features=3, d_state=4, bidirectional=True).init(jax.random.key(0), jnp.ones((1, 5, 3))),
            jnp.zeros((1, 3, 2), jnp.complex64), jnp.ones((1, 3)), method=S4D.step)
    del v
