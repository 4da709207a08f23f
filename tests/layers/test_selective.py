"""SelectiveSSM (paper and mamba forms) against a loop written here, its init, its protocol
readers/writers, and its use as ``model.layer=selective`` through the trainer."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssm_jax.layers import LAYERS, SelectiveSSM, find_layers, layer_options
from ssm_jax.models import SequenceModel
from ssm_jax.options import OptionError


def softplus(x):
    return np.log1p(np.exp(x))


def paper_loop(params, u):
    """The paper code's loop over time: u (batch, L, d) -> (batch, L, d), float64 NumPy."""
    A, WB, WC, q, p = (np.asarray(params[k], np.float64) for k in ("A", "W_B", "W_C", "q", "p"))
    batch, L, d = u.shape
    y = np.zeros((batch, L, d))
    for b in range(batch):
        x = np.zeros(A.shape)
        for t in range(L):
            ut = u[b, t]
            delta = softplus(p[0] + q @ ut)
            Bt, Ct = WB @ ut, WC @ ut
            x = np.exp(delta * A) * x + delta * np.outer(ut, Bt)
            y[b, t] = x @ Ct
    return y


def mamba_loop(params, u, rank):
    A = -np.exp(np.asarray(params["A_log"], np.float64))
    Wx, Wdt, bias, D = (np.asarray(params[k], np.float64) for k in ("W_x", "W_dt", "dt_bias", "D"))
    batch, L, d = u.shape
    N = A.shape[1]
    y = np.zeros((batch, L, d))
    for b in range(batch):
        x = np.zeros(A.shape)
        for t in range(L):
            ut = u[b, t]
            z = Wx @ ut
            delta = softplus(Wdt @ z[:rank] + bias)  # (d,)
            x = np.exp(delta[:, None] * A) * x + (delta * ut)[:, None] * z[rank:rank + N][None, :]
            y[b, t] = x @ z[rank + N:] + D * ut
    return y


@pytest.mark.parametrize("method", ["sequential", "associative"])
@pytest.mark.parametrize("chunk_size", [None, 0, 3])
def test_paper_form_matches_loop(x64, method, chunk_size):
    layer = SelectiveSSM(features=3, d_state=4, s_A=-0.05, scan_method=method,
                         chunk_size=chunk_size, param_dtype=jnp.float64)
    u = np.random.default_rng(0).normal(size=(2, 9, 3)) * 0.5
    v = layer.init(jax.random.key(1), jnp.asarray(u))
    y = jax.jit(layer.apply)(v, jnp.asarray(u))
    chex.assert_shape(y, (2, 9, 3))
    chex.assert_type(y, jnp.float64)
    np.testing.assert_allclose(np.asarray(y), paper_loop(v["params"], u), rtol=1e-10, atol=1e-10)
    chex.assert_shape([v["params"]["A"], v["params"]["W_B"], v["params"]["W_C"],
                       v["params"]["q"], v["params"]["p"]], [(3, 4), (4, 3), (4, 3), (3,), (1,)])


def test_mamba_form_matches_loop(x64):
    layer = SelectiveSSM(features=5, d_state=3, form="mamba", dt_rank=2, chunk_size=4,
                         param_dtype=jnp.float64)
    u = np.random.default_rng(1).normal(size=(2, 11, 5))
    v = layer.init(jax.random.key(2), jnp.asarray(u))
    y = layer.apply(v, jnp.asarray(u))
    np.testing.assert_allclose(np.asarray(y), mamba_loop(v["params"], u, 2), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np.asarray(v["params"]["A_log"][0]), np.log(np.arange(1, 4)))
    dt = jax.nn.softplus(v["params"]["dt_bias"])
    assert np.all((dt >= 1e-3 - 1e-12) & (dt <= 1e-1 + 1e-12))


@pytest.mark.parametrize("form", ["paper", "mamba"])
def test_defaults_are_the_kernels_choice(x64, form):
    """chunk_size None and backward "auto" (the defaults) leave both to the kernel's chooser:
    several chunks at L = 40; values and gradients equal those of explicit one-chunk autodiff."""
    layer = SelectiveSSM(features=3, d_state=4, form=form, s_A=-0.05, param_dtype=jnp.float64)
    assert layer.chunk_size is None and layer.backward == "auto"
    explicit = layer.clone(chunk_size=0, backward="autodiff")
    u = jnp.asarray(np.random.default_rng(3).normal(size=(2, 40, 3)) * 0.5)
    v = layer.init(jax.random.key(4), u)
    loop = paper_loop(v["params"], np.asarray(u)) if form == "paper" else mamba_loop(
        v["params"], np.asarray(u), layer.rank)
    np.testing.assert_allclose(np.asarray(jax.jit(layer.apply)(v, u)), loop, rtol=1e-10,
                               atol=1e-10)
    loss = lambda m: jax.jit(jax.grad(lambda p: jnp.sum(jnp.sin(m.apply(p, u)))))(v)
    for got, want in zip(jax.tree.leaves(loss(layer)), jax.tree.leaves(loss(explicit))):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-9, atol=1e-9)


def test_paper_init():
    layer = SelectiveSSM(features=16, d_state=4, s_A=0.1)
    p = layer.init(jax.random.key(0), jnp.ones((1, 3, 16)))["params"]
    A = np.asarray(p["A"])
    assert A.max() == pytest.approx(0.1, abs=1e-7)
    np.testing.assert_allclose(A[:, 0], 0.1, atol=1e-7)
    assert np.all(A[:, 1:] <= 0.1) and np.all(A[:, 1:] > 0.1 - 10) and A[:, 1:].std() > 1.5
    WB = np.asarray(p["W_B"])
    assert abs(WB.std() - 1) < 0.4  # N(0, 1), not a fan-in scaling
    assert float(SelectiveSSM.spectral_abscissa(p)) == pytest.approx(0.1, abs=1e-7)


def test_protocol_readers_and_writers():
    layer = SelectiveSSM(features=4, d_state=3)
    p = layer.init(jax.random.key(0), jnp.ones((1, 3, 4)))["params"]
    lam = SelectiveSSM.eigenvalues(p)
    chex.assert_shape(lam, (4, 3))
    assert jnp.iscomplexobj(lam)
    p2 = SelectiveSSM.with_eigenvalues(p, -0.5 + 0j)
    np.testing.assert_allclose(np.asarray(p2["A"]), -0.5)
    p3 = SelectiveSSM.with_step_sizes(p, 0.3)
    np.testing.assert_allclose(np.asarray(SelectiveSSM.step_sizes(p3)), 0.3, rtol=1e-5)
    p4 = SelectiveSSM.with_spectral_abscissa(p, 0.07)
    assert float(SelectiveSSM.spectral_abscissa(p4)) == pytest.approx(0.07, abs=1e-6)
    m = SelectiveSSM(features=4, d_state=3, form="mamba")
    pm = m.init(jax.random.key(0), jnp.ones((1, 3, 4)))["params"]
    pm2 = SelectiveSSM.with_eigenvalues(pm, -2.0)
    np.testing.assert_allclose(np.asarray(SelectiveSSM.eigenvalues(pm2).real), -2.0, rtol=1e-6)
    pm3 = SelectiveSSM.with_step_sizes(pm, 0.01)
    chex.assert_shape(SelectiveSSM.step_sizes(pm3), (4,))
    np.testing.assert_allclose(np.asarray(SelectiveSSM.step_sizes(pm3)), 0.01, rtol=1e-4)


def test_options_are_checked():
    assert LAYERS["selective"] is SelectiveSSM
    with pytest.raises(OptionError, match="form"):
        layer_options("selective", {"form": "s6"}, "model.ssm.")
    with pytest.raises(OptionError, match="dt_min"):
        layer_options("selective", {"dt_min": 0.5, "dt_max": 0.1}, "model.ssm.")


def test_mamba_block_in_sequence_model():
    model = SequenceModel(num_outputs=3, d_model=8, n_layers=2, layer="selective",
                          ssm={"form": "mamba", "d_state": 4}, encoder="linear")
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 10, 3)), jnp.float32)
    v = model.init(jax.random.key(0), x)
    out = model.apply(v, x)
    chex.assert_shape(out, (2, 3))
    layers = find_layers(model, x)
    assert set(layers.values()) == {SelectiveSSM} and len(layers) == 2
    g = jax.grad(lambda p: jnp.sum(model.apply({"params": p}, x) ** 2))(v["params"])
    assert all(np.all(np.isfinite(l)) for l in jax.tree.leaves(g))


def test_trainer_config_with_selective_layer(tmp_path):
    """model.layer=selective is a plain trainer config: parses, trains, reports."""
    from ssm_jax.training.config import apply_overrides, default_config, parse_config
    from ssm_jax.training.loop import train_and_evaluate

    c = default_config()
    c.data.update(name="majority", seq_len=12, num_train=64, num_val=32, num_test=32)
    apply_overrides(c, ["model.layer=selective", "model.ssm.form=paper", "model.ssm.d_state=2",
                        "model.ssm.s_A=0.0", "model.d_model=4", "model.n_layers=1",
                        "train.num_steps=4", "train.batch_size=16", "train.progress=false",
                        "train.eval_every=4", "train.log_every=2", "train.checkpoint_every=4"])
    cfg = parse_config(c)
    assert cfg.model.ssm.form == "paper" and cfg.model.layer == "selective"
    report = train_and_evaluate(cfg, str(tmp_path / "run"))
    assert 0.0 <= report["test"]["accuracy"] <= 1.0
    with pytest.raises(OptionError, match="model.ssm.form"):
        apply_overrides(c, ["model.ssm.form=s6"])
        parse_config(c)
