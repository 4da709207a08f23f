"""Fixtures of the bound tests: float64 for the whole package, restored afterwards, and small
SequenceModels initialized once (compilation dominates the run time on CPU)."""
import jax
import jax.numpy as jnp
import pytest

from ssm_jax.models import SequenceModel

B, L, C_IN, H, N = 8, 16, 2, 4, 4  # batch, length, input features, d_model, d_state

# name -> SequenceModel keyword arguments
MODELS = {
    "s4d_1": dict(n_layers=1, layer="s4d"),
    "s4d_3_layernorm": dict(n_layers=3, layer="s4d"),
    "s4d_3_batchnorm": dict(n_layers=3, layer="s4d", norm="batch", prenorm=False),
    "s5_2": dict(n_layers=2, layer="s5"),
    "s4d_bidirectional": dict(n_layers=2, layer="s4d", bidirectional=True),
}


@pytest.fixture(scope="package", autouse=True)
def x64():
    """float64, and fewer XLA optimizations (compilation dominates these tests); restored after."""
    previous = {k: jax.config.values[k] for k in ("jax_enable_x64", "jax_disable_most_optimizations")}
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_disable_most_optimizations", True)
    try:
        yield
    finally:
        for key, value in previous.items():
            jax.config.update(key, value)


def make_model(n_layers, layer, norm="layer", prenorm=True, bidirectional=False):
    ssm = {"d_state": N, "param_dtype": jnp.float64, "bidirectional": bidirectional}
    return SequenceModel(3, d_model=H, n_layers=n_layers, layer=layer, ssm=ssm, norm=norm,
                         prenorm=prenorm)


def make_inputs(seed=1):
    """Inputs with a time-varying mean and spread, so the channels' taus differ."""
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    t = jnp.linspace(0.0, 1.0, L)[None, :, None]
    return (jnp.sin(6 * t) + (0.3 + t) * jax.random.normal(k1, (B, L, C_IN), jnp.float64)
            + 0.5 * jax.random.normal(k2, (B, 1, C_IN), jnp.float64))


@pytest.fixture(scope="package")
def models(x64):
    """name -> (model, variables, x); built lazily, once per test session."""
    cache = {}

    def get(name):
        if name not in cache:
            model = make_model(**MODELS[name])
            x = make_inputs()
            cache[name] = (model, jax.jit(model.init)(jax.random.PRNGKey(0), x), x)
        return cache[name]

    return get


@pytest.fixture(scope="package")
def sown(models):
    """name -> the intermediates of one eval-mode forward pass of that model on its inputs."""
    cache = {}

    def get(name):
        if name not in cache:
            model, variables, x = models(name)
            apply = jax.jit(lambda v, x: model.apply(v, x, mutable=["intermediates"])[1])
            cache[name] = apply(variables, x)["intermediates"]
        return cache[name]

    return get
