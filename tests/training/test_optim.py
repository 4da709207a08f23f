"""Optimizer groups by parameter path: the SSM core (Lambda, B, step) of every layer gets its own
learning rate and no weight decay; everything else is AdamW. Schedules and gradient clipping."""

from __future__ import annotations

import flax.traverse_util as traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssm_jax.layers import S4D, S5, find_layers
from ssm_jax.training.config import default_config
from ssm_jax.training.optim import GROUPS, make_optimizer, make_schedule, param_label, param_labels

from .conftest import random_params, tiny_batch, tiny_model

# Compile time dominates: fewer XLA optimizations (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("fast_compile")

S4D_CORE = {"Lambda_re", "Lambda_im", "B_re", "B_im", "log_step"}
S5_CORE = {"Lambda_re", "Lambda_im", "B", "log_step"}


def optim_cfg(**kw):
    cfg = default_config().optim
    cfg.update(dict(lr=0.1, ssm_lr=0.01, weight_decay=0.0, warmup_steps=0, schedule="constant",
                    grad_clip=0.0))
    cfg.update(kw)
    return cfg


def flat(tree):
    return traverse_util.flatten_dict(tree)


def layers_of(model, batch):
    return find_layers(model, batch["inputs"], batch["lengths"])


def ssm_paths(params, layers):
    return {path for path, label in flat(param_labels(params, layers)).items() if label == "ssm"}


# (model kwargs, names in the ssm group per layer)
MODELS = {
    "s4d": (dict(layer="s4d"), S4D_CORE),
    "s4d-bidirectional": (dict(layer="s4d", bidirectional=True),
                          S4D_CORE | {n + "_rev" for n in S4D_CORE}),
    "s5": (dict(layer="s5"), S5_CORE),
    "s5-bidirectional": (dict(layer="s5", bidirectional=True), S5_CORE),  # C_rev is not core
}


@pytest.fixture(scope="module", params=list(MODELS))
def model_params(request):
    kw, core = MODELS[request.param]
    model, batch = tiny_model(n_layers=3, **kw), tiny_batch()
    return random_params(model, batch), core, layers_of(model, batch)


def test_every_parameter_is_in_exactly_one_group(model_params):
    params, _, layers = model_params
    labels = param_labels(params, layers)
    assert jax.tree.structure(labels) == jax.tree.structure(params)
    assert set(jax.tree.leaves(labels)) == set(GROUPS)
    partition = {g: {p for p, label in flat(labels).items() if label == g} for g in GROUPS}
    assert partition["ssm"].isdisjoint(partition["regular"])
    assert partition["ssm"] | partition["regular"] == set(flat(params))


def test_ssm_group_is_exactly_the_core_of_every_layer(model_params):
    params, core, layers = model_params
    got = ssm_paths(params, layers)
    expected = {(f"block_{i}", "ssm", name) for i in range(3) for name in core}
    assert got == expected
    assert len(got) == 3 * len(core)  # 15 (S4D), 30 (bidirectional S4D), 12 (S5)
    for path in set(flat(params)) - got:  # C, D, encoder, norm, out, head
        assert path[-1] not in core or "ssm" not in path[:-1], path


def test_group_sizes():
    batch = tiny_batch()
    for kw, size in ((dict(), 15), (dict(bidirectional=True), 30), (dict(layer="s5"), 12)):
        model = tiny_model(n_layers=3, **kw)
        assert len(ssm_paths(random_params(model, batch), layers_of(model, batch))) == size


@pytest.mark.parametrize("path,label", [
    (("block_0", "ssm", "Lambda_re"), "ssm"),
    (("block_3", "ssm", "log_step_rev"), "ssm"),
    (("block_0", "ssm", "B"), "ssm"),
    (("block_0", "ssm", "C_re"), "regular"),
    (("block_0", "ssm", "C"), "regular"),
    (("block_0", "ssm", "D"), "regular"),
    (("block_0", "norm", "scale"), "regular"),
    (("block_0", "out", "kernel"), "regular"),
    (("encoder", "kernel"), "regular"),
    (("head", "bias"), "regular"),
    (("head", "B"), "regular"),  # a core name outside an `ssm` module is not core
])
def test_param_label(path, label):
    layers = {("block_0", "ssm"): S5, ("block_3", "ssm"): S4D}  # B is S5's, log_step_rev S4D's
    assert param_label(path, layers) == label


def _one_update(cfg, params, grads, layers, total_steps=100):
    tx = make_optimizer(cfg, total_steps, layers)
    updates, _ = tx.update(grads, tx.init(params), params)
    return optax.apply_updates(params, updates)


def test_ssm_group_has_its_own_learning_rate(model_params):
    """With gradient 1 everywhere, Adam's first step is -lr: ssm_lr for the core, lr for the
    rest. A parameter in no group (or in both) would move by 0 (or lr + ssm_lr)."""
    params, _, layers = model_params
    cfg = optim_cfg(lr=0.1, ssm_lr=0.01)
    new = _one_update(cfg, params, jax.tree.map(jnp.ones_like, params), layers)
    labels = flat(param_labels(params, layers))
    for path, p in flat(params).items():
        step = np.asarray(flat(new)[path] - p)
        lr = cfg.ssm_lr if labels[path] == "ssm" else cfg.lr
        np.testing.assert_allclose(step, -lr, rtol=1e-4, err_msg=str(path))


def test_weight_decay_applies_to_regular_params_only(model_params):
    """A zero gradient: regular params shrink by lr * weight_decay, the SSM core is unchanged."""
    params, _, layers = model_params
    cfg = optim_cfg(lr=0.1, ssm_lr=0.05, weight_decay=0.2)
    new = _one_update(cfg, params, jax.tree.map(jnp.zeros_like, params), layers)
    labels = flat(param_labels(params, layers))
    shrunk = 0
    for path, p in flat(params).items():
        got, p = np.asarray(flat(new)[path]), np.asarray(p)
        if labels[path] == "ssm":
            np.testing.assert_array_equal(got, p, err_msg=str(path))
        else:
            np.testing.assert_allclose(got, p * (1 - 0.1 * 0.2), rtol=1e-6, atol=1e-8, err_msg=str(path))
            shrunk += bool(np.any(p != 0))
    assert shrunk > 0


def test_gradient_clipping_is_applied_when_configured():
    """Clipping to norm 1 is the same as feeding the gradient rescaled to norm 1 (Adam alone is
    nearly scale invariant, so compare two steps of different size)."""
    params = {"block_0": {"ssm": {"Lambda_re": jnp.zeros((3,))}}, "head": {"kernel": jnp.zeros((2, 2))}}
    g1 = {"block_0": {"ssm": {"Lambda_re": jnp.array([30.0, -40.0, 0.0])}},
          "head": {"kernel": jnp.zeros((2, 2))}}  # global norm 50
    g2 = {"block_0": {"ssm": {"Lambda_re": jnp.array([0.1, 0.2, 0.3])}},
          "head": {"kernel": jnp.full((2, 2), 0.1)}}  # norm < 1: not clipped

    def two_steps(cfg, grads):
        tx = make_optimizer(cfg, 100, {("block_0", "ssm"): S4D})
        state, p = tx.init(params), params
        for g in grads:
            updates, state = tx.update(g, state, p)
            p = optax.apply_updates(p, updates)
        return p

    clipped = two_steps(optim_cfg(grad_clip=1.0), [g1, g2])
    by_hand = two_steps(optim_cfg(grad_clip=0.0), [jax.tree.map(lambda x: x / 50.0, g1), g2])
    unclipped = two_steps(optim_cfg(grad_clip=0.0), [g1, g2])
    for a, b in zip(jax.tree.leaves(clipped), jax.tree.leaves(by_hand)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    diff = max(float(jnp.max(jnp.abs(a - b)))
               for a, b in zip(jax.tree.leaves(clipped), jax.tree.leaves(unclipped)))
    assert diff > 1e-4  # clipping made a difference


def test_cosine_schedule_warmup_and_decay():
    s = make_schedule(1.0, total_steps=100, warmup_steps=10, schedule="cosine")
    assert float(s(0)) == 0.0
    assert float(s(10)) == pytest.approx(1.0)
    assert float(s(55)) == pytest.approx(0.5, abs=1e-6)
    assert float(s(100)) == pytest.approx(0.0, abs=1e-6)


def test_no_warmup_means_full_learning_rate_at_the_first_step():
    for schedule in ("cosine", "constant"):
        assert float(make_schedule(0.3, 100, 0, schedule)(0)) == pytest.approx(0.3)


def test_run_shorter_than_its_warmup():
    """num_steps <= warmup_steps (a quick debug run of a config with long warmup) must work."""
    s = make_schedule(1.0, total_steps=10, warmup_steps=20, schedule="cosine")
    values = [float(s(i)) for i in range(11)]
    assert values[0] == 0.0 and all(np.diff(values) > 0)
    make_optimizer(optim_cfg(warmup_steps=100, schedule="cosine"), 10, {})


def test_constant_schedule_with_warmup():
    s = make_schedule(2.0, 100, 4, "constant")
    assert [float(s(i)) for i in (0, 2, 4, 50, 100)] == pytest.approx([0.0, 1.0, 2.0, 2.0, 2.0])
