"""The SSM layer protocol: a layer defined only in this file (a real-diagonal SSM) is a
first-class layer type: it validates as a config, trains in SequenceModel through the
trainer, gets the right optimizer groups, and works with layer_measures and rescale_init;
every built-in layer reads and writes its eigenvalues and step sizes; models are hashable."""

from __future__ import annotations

import dataclasses

import chex
import flax.linen as nn
import flax.traverse_util as traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssm_jax.bound import layer_measures, rescale_init
from ssm_jax.kernels import causal_conv
from ssm_jax.layers import (LAYERS, S4D, S5, SSMLayer, find_layers, layer_names, layer_options,
                            register_layer)
from ssm_jax.layers.s4 import S4
from ssm_jax.models import SequenceModel
from ssm_jax.options import OptionError, option, require


@register_layer("toy_real_diag")
class RealDiagonal(SSMLayer):
    """y = K * u with K[h, l] = sum_n C[h, n] B[h, n] exp(-step[h] a[h, n])^l (real, stable)."""

    features: int
    d_state: int = option(4, "real modes per channel", positive=True)
    a_max: float = option(2.0, "largest initial decay rate", positive=True)

    core_params = frozenset({"log_a", "B", "log_step"})
    output_params = frozenset({"C"})

    @classmethod
    def check_options(cls, o, prefix=""):
        require(o.d_state <= 64, prefix + "d_state", f"must be <= 64, got {o.d_state}")

    @staticmethod
    def eigenvalues(params):
        return -jnp.exp(params["log_a"]) + 0j

    @staticmethod
    def with_eigenvalues(params, Lambda):
        log_a = jnp.log(-jnp.real(jnp.broadcast_to(Lambda, params["log_a"].shape)))
        return {**params, "log_a": log_a}

    @staticmethod
    def step_sizes(params):
        return jnp.exp(params["log_step"])

    @staticmethod
    def with_step_sizes(params, step):
        return {**params, "log_step": jnp.log(jnp.broadcast_to(step, params["log_step"].shape))}

    @nn.compact
    def __call__(self, u):
        self.options()
        H, N, L = self.features, self.d_state, u.shape[1]
        log_a = self.param("log_a", lambda k, s: jnp.log(jnp.linspace(0.5, self.a_max, N)) *
                           jnp.ones(s), (H, N))
        B = self.param("B", nn.initializers.ones, (H, N))
        C = self.param("C", nn.initializers.normal(1.0), (H, N))
        log_step = self.param("log_step", nn.initializers.constant(np.log(0.1)), (H,))
        decay = jnp.exp(-jnp.exp(log_step)[:, None] * jnp.exp(log_a))  # (H, N) in (0, 1)
        K = jnp.einsum("hn,hnl->hl", C * B, decay[..., None] ** jnp.arange(L))
        self.sow("intermediates", "input", u)
        self.sow("intermediates", "kernel", K)
        return jax.vmap(causal_conv, in_axes=(0, None))(u, K)


def toy_model(**kw):
    return SequenceModel(num_outputs=3, d_model=4, n_layers=2, layer="toy_real_diag",
                         ssm={"d_state": 3}, norm="batch", **kw)


X = np.random.default_rng(0).normal(size=(16, 12, 2)).astype(np.float32) + np.linspace(0, 2, 12)[:, None]


def test_the_toy_layer_is_registered_with_typed_options():
    assert "toy_real_diag" in layer_names() and LAYERS["toy_real_diag"] is RealDiagonal
    opts = layer_options("toy_real_diag", {"d_state": 5})
    assert opts == RealDiagonal.Options(d_state=5, a_max=2.0) and hash(opts)
    with pytest.raises(OptionError, match="'model.ssm.d_state' must be <= 64"):
        layer_options("toy_real_diag", {"d_state": 65}, "model.ssm.")
    with pytest.raises(OptionError, match="'model.ssm.a_max' must be > 0"):
        layer_options("toy_real_diag", {"a_max": -1.0}, "model.ssm.")
    with pytest.raises(OptionError, match="unknown config key 'model.ssm.blocks' for layer "
                                          "'toy_real_diag'; allowed: d_state, a_max"):
        layer_options("toy_real_diag", {"blocks": 2}, "model.ssm.", options_only=True)


def test_optimizer_groups_of_the_toy_layer():
    from ssm_jax.training.optim import param_labels

    model = toy_model()
    params = jax.jit(model.init)(jax.random.key(0), X)["params"]
    layers = find_layers(model, X)
    assert layers == {("block_0", "ssm"): RealDiagonal, ("block_1", "ssm"): RealDiagonal}
    labels = traverse_util.flatten_dict(param_labels(params, layers))
    ssm = {path for path, label in labels.items() if label == "ssm"}
    assert ssm == {(f"block_{i}", "ssm", n) for i in (0, 1) for n in ("log_a", "B", "log_step")}


def test_layer_measures_and_rescale_init_with_the_toy_layer():
    model = toy_model()
    variables = jax.jit(model.init)(jax.random.key(0), X)
    before = layer_measures(model, variables, X)
    assert len(before) == 2 and not np.allclose(before[0], 1.0)
    scaled = rescale_init(model, variables, X)
    for tau in layer_measures(model, scaled, X):
        np.testing.assert_allclose(tau, 1.0, rtol=1e-4)
    changed = traverse_util.flatten_dict(jax.tree.map(lambda a, b: bool(jnp.any(a != b)),
                                                      variables["params"], scaled["params"]))
    assert {p for p, c in changed.items() if c} == {(f"block_{i}", "ssm", "C") for i in (0, 1)}


def test_the_toy_layer_trains_through_the_trainer(tmp_path):
    from ssm_jax.training.config import apply_overrides, default_config, parse_config
    from ssm_jax.training.loop import train_and_evaluate
    from ssm_jax.training.metrics import read_metrics

    cfg = apply_overrides(default_config(), [
        "model.layer=toy_real_diag", "model.ssm.d_state=4", "model.d_model=16", "model.n_layers=1",
        "train.num_steps=150", "train.batch_size=32", "train.log_every=50", "train.eval_every=150",
        "train.checkpoint_every=150", "train.progress=false", "optim.warmup_steps=0",
        "optim.lr=0.02", "bound.init_scaling=true", "bound.reg_lambda=0.01"])
    report = train_and_evaluate(parse_config(cfg), str(tmp_path))
    losses = [r["value"] for r in read_metrics(str(tmp_path / "metrics.csv"))
              if r["split"] == "train" and r["metric"] == "task_loss"]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert report["test"]["accuracy"] > 0.2  # 10 classes: well above chance
    reg = [r["value"] for r in read_metrics(str(tmp_path / "metrics.csv")) if r["metric"] == "reg"]
    assert reg and all(v > 0 for v in reg)


@pytest.mark.parametrize("layer,ssm", [("s4d", {}), ("s4d", {"bidirectional": True}), ("s5", {}),
                                       ("s4", {}), ("toy_real_diag", {})])
def test_every_model_is_hashable_and_jit_static(layer, ssm):
    a = SequenceModel(num_outputs=2, d_model=4, n_layers=1, layer=layer, ssm={"d_state": 4, **ssm})
    b = SequenceModel(num_outputs=2, d_model=4, n_layers=1, layer=layer, ssm={"d_state": 4, **ssm})
    assert hash(a) == hash(b) and a == b
    assert dataclasses.is_dataclass(a.ssm) and a.ssm == layer_options(layer, {"d_state": 4, **ssm})
    f = jax.jit(lambda model, v, x: model.apply(v, x), static_argnums=0)
    x = jnp.ones((2, 5, 1))
    v = a.init(jax.random.key(0), x)
    chex.assert_trees_all_close(f(a, v, x), f(b, v, x))
    assert f._cache_size() == 1  # equal models share one compiled function


@pytest.mark.parametrize("cls,options,shape", [
    (S4D, {"d_state": 6}, (3, 3)), (S4D, {"d_state": 6, "bidirectional": True}, (2, 3, 3)),
    (S5, {"d_state": 8}, (4,)), (RealDiagonal, {"d_state": 2}, (3, 2)),
    (S4, {"d_state": 6}, (3, 3)), (S4, {"d_state": 6, "bidirectional": True}, (2, 3, 3))])
def test_eigenvalue_and_step_size_accessors(cls, options, shape):
    layer = cls(features=3, **options)
    u = jax.random.normal(jax.random.key(0), (2, 7, 3))
    v = layer.init(jax.random.key(1), u)
    p = v["params"]
    Lambda, step = cls.eigenvalues(p), cls.step_sizes(p)
    assert Lambda.shape == shape and jnp.iscomplexobj(Lambda)
    assert np.all(np.real(Lambda) < 0) and np.all(step > 0)
    new_Lambda = jnp.real(Lambda) * 2 + 1j * (jnp.imag(Lambda) + 0.5 * (cls is not RealDiagonal))
    q = cls.with_step_sizes(cls.with_eigenvalues(p, new_Lambda), 0.037)
    np.testing.assert_allclose(cls.eigenvalues(q), new_Lambda, rtol=1e-6)
    np.testing.assert_allclose(cls.step_sizes(q), np.full(step.shape, 0.037), rtol=1e-6)
    assert jax.tree.structure(q) == jax.tree.structure(p)
    for a, b in zip(jax.tree.leaves(q), jax.tree.leaves(p)):
        assert a.shape == b.shape and a.dtype == b.dtype
    # the forward pass uses what was written: a smaller step changes the output
    assert not np.allclose(layer.apply({"params": q}, u), layer.apply(v, u))
