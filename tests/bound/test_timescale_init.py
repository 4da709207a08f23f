"""Paper 2's init through the layer protocol: the autocorrelation timescale layer by layer,
eigenvalue families and real parts, the Re <= 0 projection, the config section and its guard.
Run on S4D, S5 and a toy layer defined here (float64, see conftest)."""
from __future__ import annotations

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssm_jax.bound.autocorrelation import feature_gram
from ssm_jax.bound.timescale_init import (
    InitOptions, apply_init, autocorrelation_init, family_eigenvalues, init_options,
    project_real_parts, real_part_projection,
)
from ssm_jax.kernels import causal_conv, discretize, ssm_kernel
from ssm_jax.layers import SSMLayer, find_layers, get_params, register_layer
from ssm_jax.models import SequenceModel
from ssm_jax.options import OptionError, option

B, L, C_IN, H, N = 12, 32, 2, 4, 8


@register_layer("toy_complex_diag_p2")
class ToyDiagonal(SSMLayer):
    """Complex diagonal modes shared by all channels, real read-out per channel:
    ``K[h, l] = 2 Re(sum_m C[h, m] B_bar[m] Lambda_bar[m]^l)``. With ``log_real`` the real part
    is stored as ``log(-Re)`` (like Mamba's A_log), which cannot hold Re = 0."""

    features: int
    d_state: int = option(4, "complex modes", positive=True)
    log_real: bool = option(False, "store log(-Re) instead of Re")
    param_dtype: jnp.dtype = jnp.float64

    core_params = frozenset({"re", "im", "log_step"})
    output_params = frozenset({"C"})

    @staticmethod
    def eigenvalues(params):
        re = -jnp.exp(params["re"]) if "log_re" in params else params["re"]
        return re + 1j * params["im"]

    @staticmethod
    def with_eigenvalues(params, Lambda):
        Lambda = jnp.broadcast_to(Lambda, params["im"].shape)
        re = jnp.log(-jnp.real(Lambda)) if "log_re" in params else jnp.real(Lambda)
        return {**params, "re": re, "im": jnp.imag(Lambda)}

    @staticmethod
    def step_sizes(params):
        return jnp.exp(params["log_step"])  # (M,)

    @staticmethod
    def with_step_sizes(params, step):
        return {**params, "log_step": jnp.log(jnp.broadcast_to(step, params["log_step"].shape))}

    @nn.compact
    def __call__(self, u):
        M, pdt = self.d_state, self.param_dtype
        re0 = np.log(0.5) if self.log_real else -0.5
        re = self.param("re", nn.initializers.constant(re0), (M,), pdt)
        if self.log_real:
            self.param("log_re", nn.initializers.zeros, (1,), pdt)  # marker
        im = self.param("im", lambda k, s, d: jnp.pi * jnp.arange(M, dtype=d), (M,), pdt)
        step = jnp.exp(self.param("log_step", nn.initializers.constant(np.log(0.05)), (M,), pdt))
        C = self.param("C", nn.initializers.normal(1.0), (self.features, M), pdt)
        real = -jnp.exp(re) if self.log_real else re
        Lb, Bf = discretize(real + 1j * im, step)
        K = ssm_kernel(jnp.broadcast_to(Lb, C.shape), jnp.broadcast_to(Bf, C.shape), C + 0j,
                       u.shape[1])
        self.sow("intermediates", "input", u)
        self.sow("intermediates", "kernel", K)
        return jax.vmap(causal_conv, in_axes=(0, None))(u, K)


LAYER_KW = {"s4d": dict(d_state=N), "s5": dict(d_state=N), "toy_complex_diag_p2": dict(d_state=4)}


def make(layer, n_layers=2, **ssm):
    ssm = {**LAYER_KW[layer], **ssm}
    if layer != "toy_complex_diag_p2":
        ssm["param_dtype"] = jnp.float64
    # projection "linear": the model these tests were written for (SequenceModel's default
    # before it became the trainer's "glu"); 3 SGD steps from Re = 0 push a Re above 0 with it
    return SequenceModel(3, d_model=H, n_layers=n_layers, layer=layer, ssm=ssm, norm="batch",
                         projection="linear")


def inputs(seed=0, phi=0.9):
    """AR(1) inputs (correlated in time, so lambda_max differs from the white value)."""
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(B, L, C_IN))
    x = np.zeros_like(e)
    x[:, 0] = e[:, 0]
    for t in range(1, L):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return jnp.asarray(x + 0.5)


def layer_inputs(model, variables, x):
    _, state = model.apply(variables, x, train=False, mutable=["intermediates"])
    out = {}

    def walk(node, path):
        if "input" in node:
            out[path] = np.asarray(node["input"][0])
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v, path + (k,))

    walk(jax.tree.map(lambda a: a, dict(state["intermediates"])), ())
    return out


def numpy_delta(u, kappa, per_channel=False):
    """kappa / sqrt(L lambda_max) of u (n, L, H): pooled channels, or per channel."""
    n, Ln, Hn = u.shape
    if per_channel:
        return np.array([numpy_delta(u[:, :, h:h + 1], kappa) for h in range(Hn)])
    X = np.concatenate([u[:, :, h] for h in range(Hn)], 0)
    return kappa / np.sqrt(Ln * np.linalg.eigvalsh(X.T @ X / X.shape[0])[-1])


@pytest.mark.parametrize("layer", ["s4d", "s5", "toy_complex_diag_p2"])
def test_autocorrelation_rule_sets_each_layer_from_its_own_input(layer):
    model, x = make(layer, n_layers=3), inputs()
    variables = jax.jit(model.init)(jax.random.PRNGKey(0), x)
    new = autocorrelation_init(model, variables, x, kappa=0.7, power_iters=3000)
    layers = find_layers(model, x)
    final_inputs = layer_inputs(model, new, x)  # the inputs after every layer was set
    first_inputs = layer_inputs(model, variables, x)
    for path, cls in layers.items():
        step = np.asarray(cls.step_sizes(get_params(new["params"], path)))
        expected = numpy_delta(final_inputs[path], 0.7)
        np.testing.assert_allclose(step, expected, rtol=1e-6)
        before = np.asarray(cls.step_sizes(get_params(variables["params"], path)))
        assert not np.allclose(before, expected, rtol=1e-3)  # fails if the rule is a no-op
    # Layer by layer: the deeper layers' inputs changed when the first layer's Delta changed, so
    # using the inputs of the original model would give other values.
    deep = sorted(layers)[-1]
    assert not np.allclose(numpy_delta(first_inputs[deep], 0.7), numpy_delta(final_inputs[deep], 0.7),
                           rtol=1e-6)


def test_per_channel_timescale_on_s4d_and_refused_on_s5():
    x = inputs(1)
    model = make("s4d", n_layers=1)
    v = jax.jit(model.init)(jax.random.PRNGKey(0), x)
    new = apply_init(model, v, x, None, InitOptions(timescale="autocorrelation", per_channel=True,
                                                    power_iters=3000))
    (path, cls), = find_layers(model, x).items()
    step = cls.step_sizes(get_params(new["params"], path))
    chex.assert_shape(step, (H,))
    np.testing.assert_allclose(step, numpy_delta(layer_inputs(model, v, x)[path], 1.0, True),
                               rtol=1e-6)
    model5 = make("s5", n_layers=1)
    v5 = jax.jit(model5.init)(jax.random.PRNGKey(0), x)
    with pytest.raises(OptionError, match="init.per_channel"):
        apply_init(model5, v5, x, None, InitOptions(timescale="autocorrelation", per_channel=True))


@pytest.mark.parametrize("layer,family", [("s4d", "lin"), ("s4d", "inv"), ("s4d", "legs"),
                                          ("s4d", "clustered"), ("s5", "lin"), ("s5", "inv"),
                                          ("toy_complex_diag_p2", "clustered")])
def test_families_and_zero_real_part(layer, family):
    model, x = make(layer, n_layers=1), inputs()
    v = jax.jit(model.init)(jax.random.PRNGKey(0), x)
    new = apply_init(model, v, x, None, InitOptions(imag=family, real_part=0.0, real_param="clip"))
    (path, cls), = find_layers(model, x).items()
    Lam = np.asarray(cls.eigenvalues(get_params(new["params"], path)))
    M = Lam.shape[-1]
    ref = {"lin": np.pi * np.arange(M), "clustered": 0.1 * np.pi * np.arange(M)}.get(family)
    if ref is None:
        ref = family_eigenvalues(family, M).imag
    np.testing.assert_allclose(Lam.imag, np.broadcast_to(ref, Lam.shape), rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(Lam.real, 0.0)
    before = np.asarray(cls.eigenvalues(get_params(v["params"], path)))
    assert np.all(before.real < 0)  # the layers' own inits have Re = -1/2


def test_family_formulas():
    np.testing.assert_allclose(family_eigenvalues("lin", 4), -0.5 + 1j * np.pi * np.arange(4))
    np.testing.assert_allclose(family_eigenvalues("inv", 3).imag,
                               (6 / np.pi) * (6 / (2 * np.arange(3) + 1) - 1))
    np.testing.assert_allclose(family_eigenvalues("real", 3), [-1, -2, -3])
    assert np.all(family_eigenvalues("legs", 4).real == -0.5)


def test_dft_grid_with_zero_real_part_gives_orthogonal_features():
    """Autocorrelation Delta, then Delta omega_n = 2 pi n / L: with Re = 0 and white input the
    Gram matrix of each channel is diagonal (G = |B_bar|^2 L I)."""
    model = make("s4d", n_layers=1)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(B, L, C_IN)))
    v = jax.jit(model.init)(jax.random.PRNGKey(0), x)
    opts = InitOptions(timescale="autocorrelation", imag="dft", real_part=0.0, real_param="clip")
    new = apply_init(model, v, x, None, opts)
    (path, cls), = find_layers(model, x).items()
    p = get_params(new["params"], path)
    Lam, step = cls.eigenvalues(p), cls.step_sizes(p)
    theta = np.asarray(Lam.imag * step[:, None])
    np.testing.assert_allclose(theta, np.broadcast_to(2 * np.pi * np.arange(N // 2) / L, theta.shape),
                               rtol=1e-10, atol=1e-12)
    Lb, Bf = discretize(Lam[0], step[0])
    G = np.asarray(feature_gram(Lb, Bf, jnp.eye(L)))
    off = G - np.diag(np.diag(G))
    assert np.max(np.abs(off)) < 1e-9 * np.max(np.abs(np.diag(G)))
    # With the layer's own (S4D-LegS) imaginary parts the same features are not orthogonal.
    p0 = get_params(v["params"], path)
    Lb0, Bf0 = discretize(1j * cls.eigenvalues(p0)[0].imag, step[0])
    G0 = np.asarray(feature_gram(Lb0, Bf0, jnp.eye(L)))
    assert np.max(np.abs(G0 - np.diag(np.diag(G0)))) > 1e-3 * np.max(np.abs(np.diag(G0)))


def test_layer_that_cannot_store_zero_real_part_is_named():
    model, x = make("toy_complex_diag_p2", n_layers=1, log_real=True), inputs()
    v = jax.jit(model.init)(jax.random.PRNGKey(0), x)
    with pytest.raises(ValueError, match="cannot store the requested eigenvalues"):
        apply_init(model, v, x, None, InitOptions(real_part=0.0, real_param="clip"))
    apply_init(model, v, x, None, InitOptions(real_part=-0.1))  # representable: fine


@pytest.mark.parametrize("layer", ["s4d", "s5", "toy_complex_diag_p2"])
def test_projection_keeps_real_parts_nonpositive_during_training(layer):
    """A few large SGD steps from Re = 0: 'free' lets some Re become > 0, 'clip' keeps every
    Re <= 0, 'frozen' keeps Re = 0."""
    from ssm_jax.training.state import TrainState
    from ssm_jax.training.steps import make_steps

    model, x = make(layer, n_layers=1), inputs(2)
    y = jnp.asarray(np.random.default_rng(3).integers(0, 3, size=B))
    v = jax.jit(model.init)(jax.random.PRNGKey(0), x)
    v = apply_init(model, v, x, None, InitOptions(real_part=0.0, real_param="clip"))
    layers = find_layers(model, x)
    batch = {"inputs": x, "lengths": None, "labels": y}
    results = {}
    for mode in ("free", "clip", "frozen"):
        state = TrainState.create(apply_fn=model.apply, variables=v, tx=optax.sgd(5.0),
                                  rng=jax.random.PRNGKey(1))
        project = real_part_projection(InitOptions(real_param=mode), layers)
        assert (project is None) == (mode == "free")
        step, _ = make_steps("classification", project=project)
        for _ in range(3):
            state, _ = step(state, batch)
        (path, cls), = layers.items()
        results[mode] = np.asarray(cls.eigenvalues(get_params(state.params, path)))
    assert not np.all(results["free"].real <= 0)  # above 0 (or already overflowed to NaN)
    assert np.max(results["clip"].real) <= 0
    np.testing.assert_array_equal(results["frozen"].real, 0.0)
    assert np.all(np.isfinite(results["clip"])) and np.all(np.isfinite(results["frozen"]))


def test_project_real_parts_unit():
    params = {"a": {"Lambda_re": jnp.array([[0.3, -0.2]]), "Lambda_im": jnp.array([[1.0, 2.0]]),
                    "B_re": jnp.ones((1, 2)), "B_im": jnp.zeros((1, 2)),
                    "log_step": jnp.zeros((1,))}}
    from ssm_jax.layers import S4D

    layers = {("a",): S4D}
    clipped = project_real_parts(layers, "clip", params, params)
    np.testing.assert_array_equal(clipped["a"]["Lambda_re"], [[0.0, -0.2]])
    np.testing.assert_array_equal(clipped["a"]["Lambda_im"], [[1.0, 2.0]])
    old = {"a": {**params["a"], "Lambda_re": jnp.array([[-0.5, -0.5]])}}
    frozen = project_real_parts(layers, "frozen", old, params)
    np.testing.assert_array_equal(frozen["a"]["Lambda_re"], [[-0.5, -0.5]])
    assert project_real_parts(layers, "free", old, params) is params


def test_init_section_of_the_config_and_its_guard():
    from ssm_jax.training.config import default_config, parse_config

    c = default_config()
    assert parse_config(c).init == InitOptions() and not InitOptions().active
    c.init.update(timescale="autocorrelation", kappa=0.5, real_part=0.0, real_param="clip",
                  imag="dft")
    cfg = parse_config(c)
    assert cfg.init.kappa == 0.5 and cfg.init.real_part == 0.0 and cfg.init.active
    with pytest.raises(OptionError, match="'init.real_part' = 0 .*needs init.real_param"):
        init_options({"real_part": 0.0})
    with pytest.raises(OptionError, match="'init.real_part' must be <= 0"):
        init_options({"real_part": 0.1})
    with pytest.raises(OptionError, match="'init.imag' = 'foo' is not allowed; valid names"):
        init_options({"imag": "foo"})
    with pytest.raises(OptionError, match="'init.timescale'"):
        init_options({"timescale": "constant"})


def test_trainer_applies_the_init(tmp_path):
    """train_and_evaluate with the init section: the run's initial step sizes are the
    autocorrelation rule's (checked through init_variables)."""
    from ssm_jax.data import get_dataset
    from ssm_jax.training.config import default_config, parse_config
    from ssm_jax.training.loop import build_model, init_variables

    c = default_config()
    c.data.update(name="synthetic_regression", seq_len=16, num_train=32, num_val=8, num_test=8)
    c.model.update(layer="s4d", d_model=4, n_layers=2)
    c.model.ssm.update(d_state=4)
    c.bound.init_batch_size = 16
    on = parse_config(c.copy_and_resolve_references())
    c.init.update(timescale="autocorrelation")
    off_cfg, on_cfg = on, parse_config(c)
    ds = get_dataset(on_cfg.data)
    model = build_model(on_cfg.model, ds.info)
    v_off, batch = init_variables(model, off_cfg, ds.train, jax.random.PRNGKey(0))
    v_on, _ = init_variables(model, on_cfg, ds.train, jax.random.PRNGKey(0))
    layers = find_layers(model, batch["inputs"], batch["lengths"])
    for path, cls in layers.items():
        s_off = cls.step_sizes(get_params(v_off["params"], path))
        s_on = cls.step_sizes(get_params(v_on["params"], path))
        assert np.ptp(np.asarray(s_on)) < 1e-6 * np.max(np.asarray(s_on))  # one value per layer
        assert np.ptp(np.asarray(s_off)) > 0  # log-uniform


def test_dft_grid_on_s5_uses_each_modes_step():
    """S5 keeps one step per mode, (M,): the DFT grid is built mode by mode, and with the
    layer's own log-uniform steps Delta_n omega_n = 2 pi n / L still holds."""
    model, x = make("s5", n_layers=1), inputs()
    v = jax.jit(model.init)(jax.random.PRNGKey(0), x)
    new = apply_init(model, v, x, None, InitOptions(imag="dft"))
    (path, cls), = find_layers(model, x).items()
    p = get_params(new["params"], path)
    step = np.asarray(cls.step_sizes(p))
    assert np.ptp(step) > 0  # log-uniform steps, different per mode
    theta = np.asarray(cls.eigenvalues(p)).imag * step
    np.testing.assert_allclose(theta, 2 * np.pi * np.arange(len(step)) / L, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(cls.eigenvalues(p)).real, -0.5)
