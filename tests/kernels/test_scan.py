"""Tests of ssm_jax.kernels.linear_recurrence against a naive loop."""
import functools
import zlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from ssm_jax.kernels import linear_recurrence

from .reference import (assert_message, crandn, naive_linear_recurrence, shape_pattern,
                        stable_complex, stable_real)

METHODS = ["associative", "sequential", "auto"]
TOL = dict(rtol=1e-10, atol=1e-10)

# Jitted entry point used by most tests (eager associative scans dispatch op by op and are
# slow); test_jit_matches_eager checks that eager and jitted calls agree.
LR = jax.jit(linear_recurrence, static_argnames=("reverse", "method"))


def make_inputs(rng, shape, dtype, a_shape=None, with_h0=False):
    a_shape = shape if a_shape is None else a_shape
    if dtype == "complex":
        a = stable_complex(rng, a_shape)
        b = crandn(rng, shape)
        h0 = crandn(rng, shape[1:]) if with_h0 else None
    else:
        a = stable_real(rng, a_shape)
        b = rng.standard_normal(shape)
        h0 = rng.standard_normal(shape[1:]) if with_h0 else None
    return a, b, h0


def run(a, b, h0, **kwargs):
    h0 = None if h0 is None else jnp.asarray(h0)
    return LR(jnp.asarray(a), jnp.asarray(b), h0, **kwargs)


# (L, trailing dims): one-step, odd, power of two; rank 1, 2 and 3 inputs.
SHAPES = [(1, ()), (7, (3,)), (64, (2, 3)), (7, ()), (1, (2, 3)), (64, (3,))]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", ["real", "complex"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("with_h0", [False, True], ids=["zeros", "h0"])
@pytest.mark.parametrize("length,trailing", SHAPES)
def test_matches_naive_loop(method, dtype, reverse, with_h0, length, trailing):
    rng = np.random.default_rng(zlib.crc32(repr((length, trailing, dtype)).encode()))
    shape = (length,) + trailing
    a, b, h0 = make_inputs(rng, shape, dtype, with_h0=with_h0)
    h = run(a, b, h0, reverse=reverse, method=method)
    chex.assert_shape(h, shape)
    expected = naive_linear_recurrence(a, b, h0, reverse=reverse)
    np.testing.assert_allclose(np.asarray(h), expected, **TOL)
    if dtype == "complex":
        assert jnp.iscomplexobj(h)


def test_default_keywords():
    """Defaults: h0=None (zeros), reverse=False."""
    rng = np.random.default_rng(10)
    a, b, _ = make_inputs(rng, (9, 2), "complex")
    expected = naive_linear_recurrence(a, b)
    np.testing.assert_allclose(np.asarray(linear_recurrence(jnp.asarray(a), jnp.asarray(b))),
                               expected, **TOL)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("a_shape", [(16, 1, 4), (1, 3, 4), (3, 4), (4,), ()],
                         ids=lambda s: "a" + "x".join(map(str, s)))
def test_a_broadcasts_to_b(method, a_shape):
    """``a`` is broadcast against b's shape (L, 3, 4) with NumPy rules."""
    rng = np.random.default_rng(11)
    shape = (16, 3, 4)
    a, b, h0 = make_inputs(rng, shape, "complex", a_shape=a_shape, with_h0=True)
    for reverse in (False, True):
        h = run(a, b, h0, reverse=reverse, method=method)
        chex.assert_shape(h, shape)
        np.testing.assert_allclose(np.asarray(h),
                                   naive_linear_recurrence(a, b, h0, reverse=reverse), **TOL)


@pytest.mark.parametrize("method", ["associative", "sequential"])
def test_real_a_complex_b(method):
    """Real decay with complex drive gives the complex recurrence."""
    rng = np.random.default_rng(12)
    a = stable_real(rng, (11, 3))
    b = crandn(rng, (11, 3))
    h = run(a, b, None, method=method)
    np.testing.assert_allclose(np.asarray(h), naive_linear_recurrence(a, b), **TOL)


def test_methods_agree_on_long_sequence():
    rng = np.random.default_rng(13)
    a, b, h0 = make_inputs(rng, (1000, 4), "complex", with_h0=True)
    expected = naive_linear_recurrence(a, b, h0)
    for method in METHODS:
        np.testing.assert_allclose(np.asarray(run(a, b, h0, method=method)), expected, **TOL)


def test_reverse_is_flipped_forward():
    rng = np.random.default_rng(14)
    a, b, h0 = make_inputs(rng, (13, 2), "complex", with_h0=True)
    for method in ("associative", "sequential"):
        backward = run(a, b, h0, reverse=True, method=method)
        flipped = run(a[::-1], b[::-1], h0, reverse=False, method=method)[::-1]
        np.testing.assert_allclose(np.asarray(backward), np.asarray(flipped), **TOL)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_jit_matches_eager(method, reverse):
    rng = np.random.default_rng(15)
    a, b, h0 = make_inputs(rng, (12, 3), "complex", with_h0=True)
    a, b, h0 = map(jnp.asarray, (a, b, h0))
    jitted = jax.jit(linear_recurrence, static_argnames=("reverse", "method"))
    eager = linear_recurrence(a, b, h0, reverse=reverse, method=method)
    np.testing.assert_allclose(np.asarray(jitted(a, b, h0, reverse=reverse, method=method)),
                               np.asarray(eager), **TOL)
    np.testing.assert_allclose(np.asarray(jitted(a, b, None, reverse=reverse, method=method)),
                               naive_linear_recurrence(a, b, None, reverse=reverse), **TOL)


@pytest.mark.parametrize("method", METHODS)
def test_vmap_over_sequences(method):
    """vmap over a batch of sequences equals the per-sequence results."""
    rng = np.random.default_rng(16)
    batch, shape = 4, (10, 3)
    a, b, _ = make_inputs(rng, (batch,) + shape, "complex")
    h0 = crandn(rng, (batch,) + shape[1:])
    a, b, h0 = map(jnp.asarray, (a, b, h0))
    for reverse in (False, True):
        f = functools.partial(linear_recurrence, reverse=reverse, method=method)
        batched = jax.jit(jax.vmap(f))(a, b, h0)
        shared_a = jax.jit(jax.vmap(f, in_axes=(None, 0, None)))(a[0], b, h0[0])
        no_h0 = jax.jit(jax.vmap(f))(a, b)
        chex.assert_shape([batched, shared_a, no_h0], (batch,) + shape)
        for i in range(batch):
            single = LR(a[i], b[i], h0[i], reverse=reverse, method=method)
            np.testing.assert_allclose(np.asarray(batched[i]), np.asarray(single), **TOL)
            np.testing.assert_allclose(
                np.asarray(batched[i]),
                naive_linear_recurrence(a[i], b[i], h0[i], reverse=reverse), **TOL)
            np.testing.assert_allclose(
                np.asarray(shared_a[i]),
                naive_linear_recurrence(a[0], b[i], h0[0], reverse=reverse), **TOL)
            np.testing.assert_allclose(
                np.asarray(no_h0[i]),
                naive_linear_recurrence(a[i], b[i], None, reverse=reverse), **TOL)


@pytest.mark.parametrize("method", ["associative", "sequential"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_grads_complex(method, reverse):
    rng = np.random.default_rng(17)
    a, b, h0 = make_inputs(rng, (5, 2), "complex", with_h0=True)
    f = jax.jit(functools.partial(linear_recurrence, reverse=reverse, method=method))
    check_grads(f, tuple(map(jnp.asarray, (a, b, h0))), order=1, modes=("fwd", "rev"))


@pytest.mark.parametrize("method", ["associative", "sequential"])
def test_grads_real_loss(method):
    """Gradient of a real loss of a complex recurrence (non-holomorphic path)."""
    rng = np.random.default_rng(18)
    a, b, h0 = make_inputs(rng, (6, 3), "complex", with_h0=True)

    @jax.jit
    def loss(a, b, h0):
        h = linear_recurrence(a, b, h0, method=method)
        return jnp.sum(jnp.abs(h) ** 2)

    check_grads(loss, tuple(map(jnp.asarray, (a, b, h0))), order=1, modes=("fwd", "rev"))


@pytest.mark.parametrize("method", ["associative", "sequential"])
def test_grads_real(method):
    rng = np.random.default_rng(19)
    a, b, h0 = make_inputs(rng, (6, 2), "real", with_h0=True)
    f = jax.jit(functools.partial(linear_recurrence, method=method))
    check_grads(f, tuple(map(jnp.asarray, (a, b, h0))), order=1, modes=("fwd", "rev"))


def test_grad_matches_adjoint_recurrence():
    """d/db of <g, h> is the reverse recurrence of g with a shifted by one step."""
    rng = np.random.default_rng(20)
    a = stable_real(rng, (8, 3))
    b = rng.standard_normal((8, 3))
    g = rng.standard_normal((8, 3))
    for method in ("associative", "sequential"):
        grad_b = jax.jit(jax.grad(lambda b: jnp.sum(jnp.asarray(g) * linear_recurrence(
            jnp.asarray(a), b, method=method))))(jnp.asarray(b))
        # lambda_t = g_t + a_{t+1} lambda_{t+1}, lambda_{L} = 0
        a_next = np.concatenate([a[1:], np.zeros((1, 3))])
        expected = naive_linear_recurrence(a_next, g, reverse=True)
        np.testing.assert_allclose(np.asarray(grad_b), expected, **TOL)


@pytest.mark.float32
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", ["real", "complex"])
def test_float32_dtypes(method, dtype):
    rng = np.random.default_rng(21)
    a, b, h0 = make_inputs(rng, (9, 2, 3), dtype, with_h0=True)
    want = jnp.complex64 if dtype == "complex" else jnp.float32
    a, b, h0 = (jnp.asarray(x, dtype=want) for x in (a, b, h0))
    for h in (LR(a, b, method=method),
              LR(a, b, h0, reverse=True, method=method)):
        chex.assert_type(h, want)
        chex.assert_shape(h, (9, 2, 3))
    np.testing.assert_allclose(
        np.asarray(LR(a, b, h0, method=method)),
        naive_linear_recurrence(np.asarray(a), np.asarray(b), np.asarray(h0)),
        rtol=1e-4, atol=1e-4)


def test_auto_method_value():
    from ssm_jax.kernels import scan

    if not hasattr(scan, "auto_method"):
        pytest.skip("ssm_jax.kernels.scan.auto_method not provided")
    assert scan.auto_method() in ("associative", "sequential")


# --------------------------------------------------------------------------- bad input
def test_unknown_method_lists_valid_names():
    with pytest.raises(ValueError) as excinfo:
        linear_recurrence(jnp.ones((4, 2)), jnp.ones((4, 2)), method="parallel-prefix")
    for name in METHODS:
        assert name in str(excinfo.value), str(excinfo.value)


def test_b_of_rank_zero():
    with pytest.raises(ValueError) as excinfo:
        linear_recurrence(jnp.asarray(0.5), jnp.asarray(1.0))
    assert_message(excinfo, r"\bb\b")


@pytest.mark.parametrize("a_shape,b_shape", [((8, 3), (7, 3)), ((7, 4), (7, 3)),
                                             ((7, 3, 2), (7, 3)), ((2, 7, 3), (7, 3))])
def test_a_does_not_broadcast(a_shape, b_shape):
    with pytest.raises(ValueError) as excinfo:
        linear_recurrence(jnp.ones(a_shape), jnp.ones(b_shape))
    assert_message(excinfo, r"\ba\b", shape_pattern(a_shape), shape_pattern(b_shape))


@pytest.mark.parametrize("h0_shape", [(4,), (7, 3), (3, 1)])
def test_h0_wrong_shape(h0_shape):
    b_shape = (7, 3)
    with pytest.raises(ValueError) as excinfo:
        linear_recurrence(jnp.ones(b_shape), jnp.ones(b_shape), jnp.ones(h0_shape))
    # both shapes: h0's and b's (or the expected state shape b.shape[1:])
    assert_message(excinfo, r"\bh0\b", shape_pattern(h0_shape),
                   shape_pattern(b_shape) + "|" + shape_pattern(b_shape[1:]))
