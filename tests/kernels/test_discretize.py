"""Tests of ssm_jax.kernels.discretize against the ZOH / bilinear formulas."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from ssm_jax.kernels import discretize

from .reference import continuous_lambda

TOL = dict(rtol=1e-10, atol=1e-12)


def exp_minus_one(z):
    """exp(z) - 1 for complex z without cancellation near 0."""
    a, b = z.real, z.imag
    re = np.expm1(a) * np.cos(b) - 2.0 * np.sin(b / 2.0) ** 2
    im = np.exp(a) * np.sin(b)
    return complex(re, im)


def zoh_reference(Lambda, step):
    Lambda, step = np.broadcast_arrays(np.asarray(Lambda), np.asarray(step))
    Lambda_bar = np.empty(Lambda.shape, np.complex128)
    B_factor = np.empty(Lambda.shape, np.complex128)
    for idx in np.ndindex(Lambda.shape):
        lam, dt = complex(Lambda[idx]), float(step[idx])
        Lambda_bar[idx] = np.exp(dt * lam)
        B_factor[idx] = exp_minus_one(dt * lam) / lam
    return Lambda_bar, B_factor


def bilinear_reference(Lambda, step):
    Lambda, step = np.broadcast_arrays(np.asarray(Lambda), np.asarray(step))
    Lambda_bar = np.empty(Lambda.shape, np.complex128)
    B_factor = np.empty(Lambda.shape, np.complex128)
    for idx in np.ndindex(Lambda.shape):
        lam, dt = complex(Lambda[idx]), float(step[idx])
        Lambda_bar[idx] = (1.0 + dt * lam / 2.0) / (1.0 - dt * lam / 2.0)
        B_factor[idx] = dt / (1.0 - dt * lam / 2.0)
    return Lambda_bar, B_factor


REFERENCES = {"zoh": zoh_reference, "bilinear": bilinear_reference}

# (Lambda shape, step shape): elementwise with broadcasting of step against Lambda.
SHAPES = [
    ((5,), ()),
    ((5,), (5,)),
    ((4, 6), (4, 1)),
    ((4, 6), (6,)),
    ((6,), (3, 1)),  # step broadcasts Lambda up to (3, 6)
    ((2, 3, 4), (2, 1, 1)),
]


@pytest.mark.parametrize("method", ["zoh", "bilinear"])
@pytest.mark.parametrize("lambda_shape,step_shape", SHAPES)
def test_matches_formula(method, lambda_shape, step_shape):
    rng = np.random.default_rng(0)
    Lambda = continuous_lambda(rng, lambda_shape)
    step = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), step_shape))
    Lambda_bar, B_factor = discretize(jnp.asarray(Lambda), jnp.asarray(step), method=method)
    ref_bar, ref_factor = REFERENCES[method](Lambda, step)
    expected_shape = np.broadcast_shapes(lambda_shape, step_shape)
    chex.assert_shape([Lambda_bar, B_factor], expected_shape)
    np.testing.assert_allclose(np.asarray(Lambda_bar), ref_bar, **TOL)
    np.testing.assert_allclose(np.asarray(B_factor), ref_factor, **TOL)


def test_default_method_is_zoh():
    rng = np.random.default_rng(1)
    Lambda = jnp.asarray(continuous_lambda(rng, (7,)))
    step = jnp.asarray(0.05)
    for got, want in zip(discretize(Lambda, step), discretize(Lambda, step, method="zoh")):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_large_step():
    """Steps of order 1..10 (timescales of the slowest modes) are still exact."""
    rng = np.random.default_rng(2)
    Lambda = continuous_lambda(rng, (8,))
    step = np.array([0.5, 1.0, 2.0, 3.0, 5.0, 7.0, 9.0, 10.0])
    for method, ref in REFERENCES.items():
        got = discretize(jnp.asarray(Lambda), jnp.asarray(step), method=method)
        for g, w in zip(got, ref(Lambda, step)):
            np.testing.assert_allclose(np.asarray(g), w, **TOL)


def test_real_lambda():
    """A real (S4D-Real-like) Lambda works elementwise too."""
    Lambda = -np.arange(1.0, 6.0)
    step = np.full(5, 0.1)
    for method, ref in REFERENCES.items():
        got = discretize(jnp.asarray(Lambda), jnp.asarray(step), method=method)
        for g, w in zip(got, ref(Lambda, step)):
            np.testing.assert_allclose(np.asarray(g), w, **TOL)


def test_small_step_limits():
    """Both rules agree with exp(step Lambda) to O(step^3) and B_factor -> step."""
    rng = np.random.default_rng(3)
    Lambda = continuous_lambda(rng, (6,))
    step = 1e-4
    zoh_bar, zoh_factor = discretize(jnp.asarray(Lambda), step, method="zoh")
    bil_bar, bil_factor = discretize(jnp.asarray(Lambda), step, method="bilinear")
    np.testing.assert_allclose(np.asarray(zoh_bar), np.asarray(bil_bar), rtol=0, atol=1e-11)
    np.testing.assert_allclose(np.asarray(zoh_factor), step, rtol=1e-3)
    np.testing.assert_allclose(np.asarray(bil_factor), step, rtol=1e-3)
    # ZOH: B_factor = step (1 + step Lambda / 2 + ...): the first-order term is right.
    np.testing.assert_allclose(np.asarray(zoh_factor), step * (1 + step * Lambda / 2),
                               rtol=0, atol=1e-6 * step)


def test_jit_and_vmap():
    rng = np.random.default_rng(4)
    Lambda = jnp.asarray(continuous_lambda(rng, (3, 5)))
    steps = jnp.asarray(rng.uniform(1e-3, 1e-1, (4, 3, 1)))
    for method in ("zoh", "bilinear"):
        jitted = jax.jit(discretize, static_argnames="method")
        batched = jax.vmap(lambda s: discretize(Lambda, s, method=method))(steps)
        for i in range(steps.shape[0]):
            eager = discretize(Lambda, steps[i], method=method)
            jit_out = jitted(Lambda, steps[i], method=method)
            for e, j, b in zip(eager, jit_out, batched):
                np.testing.assert_allclose(np.asarray(j), np.asarray(e), **TOL)
                np.testing.assert_allclose(np.asarray(b[i]), np.asarray(e), **TOL)


@pytest.mark.parametrize("method", ["zoh", "bilinear"])
def test_grads(method):
    rng = np.random.default_rng(5)
    Lambda = jnp.asarray(continuous_lambda(rng, (4,)))
    log_step = jnp.asarray(np.log(rng.uniform(1e-2, 1e-1, (4,))))

    @jax.jit
    def f(Lambda, log_step):
        return discretize(Lambda, jnp.exp(log_step), method=method)

    check_grads(f, (Lambda, log_step), order=1, modes=("fwd", "rev"))


@pytest.mark.float32
@pytest.mark.parametrize("method", ["zoh", "bilinear"])
def test_float32_dtypes(method):
    rng = np.random.default_rng(6)
    Lambda = jnp.asarray(continuous_lambda(rng, (3, 4)), dtype=jnp.complex64)
    step = jnp.asarray(rng.uniform(1e-3, 1e-1, (3, 1)), dtype=jnp.float32)
    Lambda_bar, B_factor = discretize(Lambda, step, method=method)
    chex.assert_type([Lambda_bar, B_factor], jnp.complex64)
    chex.assert_shape([Lambda_bar, B_factor], (3, 4))
    ref_bar, ref_factor = REFERENCES[method](np.asarray(Lambda), np.asarray(step))
    np.testing.assert_allclose(np.asarray(Lambda_bar), ref_bar, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(B_factor), ref_factor, rtol=1e-4, atol=1e-7)


def test_unknown_method_lists_valid_names():
    Lambda = jnp.asarray([-0.5 + 1j])
    with pytest.raises(ValueError) as excinfo:
        discretize(Lambda, 0.1, method="euler-ish")
    message = str(excinfo.value)
    assert "zoh" in message and "bilinear" in message, message
