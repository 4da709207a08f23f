"""Jitted train/eval steps: the loss is the task loss plus weighted extra terms that read the
sown intermediates (their gradient flows), eval excludes padding rows via batch["mask"]."""

from __future__ import annotations

import flax.traverse_util as traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssm_jax.training.state import TrainState
from ssm_jax.training.steps import make_steps, task_loss

from .conftest import init_params, tiny_batch, tiny_model

# Compile time dominates: fewer XLA optimizations (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("fast_compile")


def kernel_sq(intermediates, batch, params=None):
    """Sum of squares of every sown SSM kernel."""
    flat = traverse_util.flatten_dict(intermediates)
    values = [jnp.sum(jnp.square(k)) for path, ks in flat.items() if path[-1].startswith("kernel")
              for k in ks]
    assert values, "no kernel was sown"
    return sum(values)


@pytest.fixture(scope="module")
def setup():
    model = tiny_model(n_layers=2, d_model=4, d_state=4)
    batch = tiny_batch(batch=8)
    params = init_params(model, batch)
    return model, params, batch


SGD = optax.sgd(1.0)  # one object, so that states built from it share one compiled step
PLAIN_STEPS = make_steps("classification")


def sgd_state(model, params):
    """A state whose update is exactly ``params - grads``."""
    return TrainState.create(apply_fn=model.apply, variables={"params": params}, tx=SGD,
                             rng=jax.random.PRNGKey(1))


def test_train_step_is_jitted_once(setup):
    model, params, batch = setup
    train_step, eval_step = make_steps("classification")
    state = sgd_state(model, jax.tree.map(lambda p: p * 1.0, params))
    for _ in range(3):
        state, metrics = train_step(state, batch)
        eval_step(state, {**batch, "mask": np.ones(8, bool)})
    assert int(state.step) == 3
    assert train_step._cache_size() == 1  # one compiled step, not one per call
    assert eval_step._cache_size() == 1
    assert set(metrics) >= {"loss", "task_loss", "accuracy", "grad_norm"}
    assert float(metrics["loss"]) == pytest.approx(float(metrics["task_loss"]))


def test_train_step_loss_and_gradient_match_the_task_loss(setup):
    model, params, batch = setup
    train_step, _ = PLAIN_STEPS
    new, metrics = train_step(sgd_state(model, params), batch)

    def loss(p):
        out = model.apply({"params": p}, batch["inputs"], batch["lengths"])
        return optax.softmax_cross_entropy_with_integer_labels(out, batch["labels"]).mean()

    value, grads = jax.jit(jax.value_and_grad(loss))(params)
    assert float(metrics["loss"]) == pytest.approx(float(value), rel=1e-5)
    assert float(metrics["grad_norm"]) == pytest.approx(float(optax.tree.norm(grads)), rel=1e-4)
    for a, p, g in zip(jax.tree.leaves(new.params), jax.tree.leaves(params), jax.tree.leaves(grads)):
        np.testing.assert_allclose(a, p - g, rtol=1e-4, atol=1e-6)


def test_loss_term_is_added_with_its_weight_and_its_gradient_flows(setup):
    model, params, batch = setup
    weight = 0.05
    plain_step, _ = PLAIN_STEPS
    term_step, _ = make_steps("classification", terms={"ksq": (weight, kernel_sq)})
    plain, m0 = plain_step(sgd_state(model, params), batch)
    with_term, m1 = term_step(sgd_state(model, params), batch)

    def term_value(p):
        _, updates = model.apply({"params": p}, batch["inputs"], batch["lengths"], train=True,
                                 mutable=["intermediates"])
        return kernel_sq(updates["intermediates"], batch)

    value, term_grads = jax.jit(jax.value_and_grad(term_value))(params)
    assert float(value) > 0
    assert float(m1["ksq"]) == pytest.approx(float(value), rel=1e-5)
    assert float(m1["task_loss"]) == pytest.approx(float(m0["task_loss"]), rel=1e-6)
    assert float(m1["loss"]) == pytest.approx(float(m1["task_loss"]) + weight * float(value), rel=1e-5)
    # SGD with lr 1: the difference of the two updates is -weight * grad(term).
    moved = 0
    for a, b, g in zip(jax.tree.leaves(with_term.params), jax.tree.leaves(plain.params),
                       jax.tree.leaves(term_grads)):
        np.testing.assert_allclose(a - b, -weight * g, rtol=1e-3, atol=1e-5)
        moved += float(jnp.max(jnp.abs(g))) > 1e-3
    assert moved > 0  # the term's gradient reaches the SSM parameters


def test_several_terms_add_up(setup):
    model, params, batch = setup
    terms = {"ksq": (0.1, kernel_sq), "const": (2.0, lambda inter, b, p: jnp.float32(3.0))}
    step, _ = make_steps("classification", terms=terms)
    _, m = step(sgd_state(model, params), batch)
    assert float(m["const"]) == 3.0
    assert float(m["loss"]) == pytest.approx(
        float(m["task_loss"]) + 0.1 * float(m["ksq"]) + 6.0, rel=1e-5)


def test_eval_step_excludes_padding_rows(setup):
    model, params, batch = setup
    _, eval_step = PLAIN_STEPS
    state = sgd_state(model, params)
    real = 5
    mask = np.arange(8) < real
    sums = jax.device_get(eval_step(state, {**batch, "mask": mask}))
    # The same rows alone (batch of 5, no padding) give the same sums.
    only_real = {k: v[:real] for k, v in batch.items()}
    ref = jax.device_get(eval_step(state, {**only_real, "mask": np.ones(real, bool)}))
    assert float(sums["count"]) == real
    for key in ("loss", "accuracy"):
        assert float(sums[key]) == pytest.approx(float(ref[key]), rel=1e-5)
    # Whatever the padding rows hold, the sums do not change.
    junk = dict(batch, mask=mask)
    junk["inputs"] = batch["inputs"].copy()
    junk["inputs"][real:] = 1e3
    junk["labels"] = batch["labels"].copy()
    junk["labels"][real:] = (batch["labels"][real:] + 1) % 3
    sums2 = jax.device_get(eval_step(state, junk))
    for key in ("loss", "accuracy", "count"):
        assert float(sums2[key]) == pytest.approx(float(sums[key]), rel=1e-6)
    # Without a mask every row counts.
    full = jax.device_get(eval_step(state, batch))
    assert float(full["count"]) == 8
    assert float(full["loss"]) != pytest.approx(float(sums["loss"]))


def test_task_loss_mask_and_regression():
    outputs = jnp.array([[2.0, 0.0], [0.0, 2.0], [5.0, 0.0]])
    labels = jnp.array([0, 0, 1])
    mean, sums = task_loss(outputs, labels, "classification", jnp.array([True, True, False]))
    assert float(sums["count"]) == 2 and float(sums["accuracy"]) == 1.0
    expected = optax.softmax_cross_entropy_with_integer_labels(outputs[:2], labels[:2]).mean()
    assert float(mean) == pytest.approx(float(expected))
    mean, sums = task_loss(jnp.array([[1.0], [3.0]]), jnp.array([0.0, 1.0]), "regression")
    assert float(mean) == pytest.approx((1 + 4) / 2) and "accuracy" not in sums
