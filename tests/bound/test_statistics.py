"""input_statistics and StreamingStatistics against numpy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssm_jax.bound import StreamingStatistics, input_statistics


def data(shape, seed=0, loc=0.0):
    rng = np.random.default_rng(seed)
    return loc + rng.normal(size=shape) * rng.uniform(0.5, 2.0, size=shape[1:])


def test_input_statistics_matches_numpy():
    x = data((9, 12, 3), loc=1.5)
    mean, std = input_statistics(jnp.asarray(x))
    assert mean.shape == std.shape == (12, 3)
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(std, x.std(0, ddof=0), rtol=1e-12)


def test_input_statistics_jit_and_vmap():
    x = jnp.asarray(data((3, 5, 7, 2)))  # 3 independent batches
    mean, std = jax.jit(jax.vmap(input_statistics))(x)
    np.testing.assert_allclose(mean, np.asarray(x).mean(1), rtol=1e-12)
    np.testing.assert_allclose(std, np.asarray(x).std(1), rtol=1e-12)


def test_std_gradient_matches_the_analytic_gradient():
    """d std[s, h] / d x[b, s, h] = (x[b, s, h] - mean[s, h]) / (batch * std[s, h])."""
    x = data((6, 5, 2), seed=4)
    w = np.random.default_rng(5).normal(size=(5, 2))
    grad = jax.jit(jax.grad(lambda x: jnp.sum(w * input_statistics(x)[1])))
    np.testing.assert_allclose(grad(x), w * (x - x.mean(0)) / (6 * x.std(0)), rtol=1e-10)
    # second order too: Hessian-vector product against central differences of the gradient
    v = np.random.default_rng(6).normal(size=x.shape)
    hvp = jax.jit(lambda x: jax.jvp(grad, (x,), (v,))[1])(x)
    eps = 1e-5
    np.testing.assert_allclose(hvp, (grad(x + eps * v) - grad(x - eps * v)) / (2 * eps), rtol=1e-6, atol=1e-8)


def test_std_gradient_is_finite_where_the_batch_is_constant():
    x = jnp.asarray(data((4, 6, 2))).at[:, 2].set(1.0)  # no spread at time step 2
    g = jax.grad(lambda x: jnp.sum(input_statistics(x)[1]))(x)
    assert np.all(np.isfinite(g)) and np.all(g[:, 2] == 0)


def test_streaming_equals_batch_statistics_uneven_chunks():
    x = data((23, 10, 3), seed=1, loc=-2.0)
    state = StreamingStatistics.init(10, 3)
    update = jax.jit(StreamingStatistics.update)
    for start, stop in [(0, 3), (3, 10), (10, 11), (11, 23)]:
        state = update(state, jnp.asarray(x[start:stop]))
    mean, std = StreamingStatistics.finalize(state)
    assert float(state.count) == 23
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(std, x.std(0), rtol=1e-12)
    batch_mean, batch_std = input_statistics(jnp.asarray(x))
    np.testing.assert_allclose(std, batch_std, rtol=1e-12)


def test_streaming_is_accurate_in_float32_with_a_large_mean():
    """E[x^2] - E[x]^2 would lose every digit here (mean 1e4, std 1, float32)."""
    x = data((64, 5, 2), seed=2, loc=1e4)
    state = StreamingStatistics.init(5, 2, jnp.float32)
    for chunk in np.array_split(x, 7):
        state = StreamingStatistics.update(state, jnp.asarray(chunk, jnp.float32))
    mean, std = StreamingStatistics.finalize(state)
    assert std.dtype == jnp.float32
    np.testing.assert_allclose(std, x.astype(np.float32).astype(np.float64).std(0), rtol=1e-3)


def test_streaming_in_a_scan():
    x = data((4, 6, 8, 2), seed=3)  # 4 chunks of 6 sequences
    final, _ = jax.lax.scan(lambda s, c: (StreamingStatistics.update(s, c), None),
                            StreamingStatistics.init(8, 2), jnp.asarray(x))
    mean, std = StreamingStatistics.finalize(final)
    np.testing.assert_allclose(std, x.reshape(24, 8, 2).std(0), rtol=1e-12)


def test_streaming_empty_state_is_nan():
    mean, std = StreamingStatistics.finalize(StreamingStatistics.init(3, 2))
    assert np.all(np.isnan(mean)) and np.all(np.isnan(std))


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"\(batch, L, H\).*\(3, 4\)"):
        input_statistics(jnp.ones((3, 4)))
    with pytest.raises(ValueError, match="at least one sequence"):
        input_statistics(jnp.ones((0, 4, 2)))
    with pytest.raises(ValueError, match=r"\(5, 2\).*\(4, 2\)"):
        StreamingStatistics.update(StreamingStatistics.init(4, 2), jnp.ones((3, 5, 2)))
