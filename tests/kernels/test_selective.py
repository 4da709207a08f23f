"""Tests of ssm_jax.kernels.selective_scan (input-dependent delta, B, C) against a naive loop."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import ssm_jax.kernels as kernels

from .reference import naive_selective_scan

if not hasattr(kernels, "selective_scan"):
    pytest.skip("ssm_jax.kernels has no selective_scan yet (selective.py not landed)",
                allow_module_level=True)

selective_scan = kernels.selective_scan

METHODS = ["associative", "sequential", "auto"]
TOL = dict(rtol=1e-10, atol=1e-10)
SS = jax.jit(selective_scan, static_argnames=("method", "chunk_size", "return_state"))


def make_inputs(rng, L, D, N, shared_delta=False):
    u = rng.standard_normal((L, D))
    delta = np.log1p(np.exp(rng.standard_normal((L, 1 if shared_delta else D)) - 2.0))
    A = -np.exp(rng.standard_normal((D, N)))  # negative real
    B = rng.standard_normal((L, N))
    C = rng.standard_normal((L, N))
    return u, delta, A, B, C


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shared_delta", [False, True], ids=["delta_LD", "delta_L1"])
@pytest.mark.parametrize("L,D,N", [(1, 3, 4), (7, 3, 4), (32, 2, 5), (7, 1, 1)])
def test_matches_naive_loop(method, shared_delta, L, D, N):
    rng = np.random.default_rng(L * 100 + D * 10 + N + shared_delta)
    inputs = make_inputs(rng, L, D, N, shared_delta)
    y = SS(*map(jnp.asarray, inputs), method=method)
    chex.assert_shape(y, (L, D))
    assert not jnp.iscomplexobj(y)
    np.testing.assert_allclose(np.asarray(y), naive_selective_scan(*inputs), **TOL)


def test_reduces_to_lti_ssm_when_inputs_are_constant():
    """Constant delta, B, C: y is the causal convolution with K[l] = sum_n C e^{l dA} dB."""
    rng = np.random.default_rng(1)
    L, D, N = 12, 2, 3
    u = rng.standard_normal((L, D))
    delta = np.full((L, D), 0.1)
    A = -np.exp(rng.standard_normal((D, N)))
    b, c = rng.standard_normal(N), rng.standard_normal(N)
    B, C = np.tile(b, (L, 1)), np.tile(c, (L, 1))
    y = np.asarray(selective_scan(*map(jnp.asarray, (u, delta, A, B, C))))
    K = np.array([[np.sum(c * np.exp(l * 0.1 * A[d]) * 0.1 * b) for l in range(L)]
                  for d in range(D)])
    expected = np.array([[sum(K[d, t - s] * u[s, d] for s in range(t + 1)) for d in range(D)]
                         for t in range(L)])
    np.testing.assert_allclose(y, expected, **TOL)


@pytest.mark.parametrize("method", METHODS)
def test_jit_and_vmap(method):
    rng = np.random.default_rng(2)
    batch = [make_inputs(rng, 9, 3, 4) for _ in range(3)]
    stacked = [jnp.asarray(np.stack(x)) for x in zip(*batch)]
    f = functools.partial(selective_scan, method=method)
    batched = jax.jit(jax.vmap(f))(*stacked)
    shared_A = jax.vmap(f, in_axes=(0, 0, None, 0, 0))(
        stacked[0], stacked[1], stacked[2][0], stacked[3], stacked[4])
    chex.assert_shape([batched, shared_A], (3, 9, 3))
    for i, inputs in enumerate(batch):
        np.testing.assert_allclose(np.asarray(batched[i]), naive_selective_scan(*inputs), **TOL)
        with_A0 = (inputs[0], inputs[1], batch[0][2], inputs[3], inputs[4])
        np.testing.assert_allclose(np.asarray(shared_A[i]), naive_selective_scan(*with_A0), **TOL)
        np.testing.assert_allclose(np.asarray(jax.jit(f)(*map(jnp.asarray, inputs))),
                                   np.asarray(batched[i]), **TOL)


@pytest.mark.parametrize("method", ["associative", "sequential"])
@pytest.mark.parametrize("backward", ["adjoint", "autodiff"])
def test_grads(method, backward):
    rng = np.random.default_rng(3)
    inputs = tuple(map(jnp.asarray, make_inputs(rng, 5, 2, 3)))
    f = jax.jit(functools.partial(selective_scan, method=method, backward=backward))
    # the adjoint is a custom VJP: reverse mode only
    check_grads(f, inputs, order=1, modes=("rev",) if backward == "adjoint" else ("fwd", "rev"))


@pytest.mark.float32
@pytest.mark.parametrize("method", METHODS)
def test_float32(method):
    rng = np.random.default_rng(4)
    inputs = [jnp.asarray(x, jnp.float32) for x in make_inputs(rng, 8, 3, 4)]
    y = SS(*inputs, method=method)
    chex.assert_type(y, jnp.float32)
    chex.assert_shape(y, (8, 3))
    np.testing.assert_allclose(np.asarray(y), naive_selective_scan(*map(np.asarray, inputs)),
                               rtol=1e-4, atol=1e-5)


def test_unknown_method_lists_valid_names():
    rng = np.random.default_rng(5)
    inputs = tuple(map(jnp.asarray, make_inputs(rng, 4, 2, 3)))
    with pytest.raises(ValueError) as excinfo:
        selective_scan(*inputs, method="cuda-kernel")
    for name in ("associative", "sequential", "auto"):
        assert name in str(excinfo.value), str(excinfo.value)


# ----------------------------------------------------------------- chunks, h0, state, memory
def loop_scan(u, delta, A, B, C, h0=None):
    """The recurrence written out as a plain Python loop over time in jnp (differentiable,
    shares no code with the kernel): returns (y (L, D), final state (D, N))."""
    L, D = u.shape
    delta = jnp.broadcast_to(delta, (L, D))
    x = jnp.zeros(A.shape, u.dtype) if h0 is None else h0
    ys = []
    for t in range(L):
        x = jnp.exp(delta[t][:, None] * A) * x + delta[t][:, None] * B[t][None, :] * u[t][:, None]
        ys.append(x @ C[t])
    return jnp.stack(ys), x


CHUNKS = [None, 1, 3, 4, 50]


@pytest.mark.parametrize("method", ["associative", "sequential"])
@pytest.mark.parametrize("chunk_size", CHUNKS)
@pytest.mark.parametrize("shared_delta", [False, True], ids=["delta_LD", "delta_L1"])
def test_chunked_with_h0_matches_loop(method, chunk_size, shared_delta):
    rng = np.random.default_rng(11 + shared_delta)
    L, D, N = 10, 3, 4
    inputs = tuple(map(jnp.asarray, make_inputs(rng, L, D, N, shared_delta)))
    h0 = jnp.asarray(rng.standard_normal((D, N)))
    y, h = SS(*inputs, method=method, h0=h0, chunk_size=chunk_size, return_state=True)
    chex.assert_shape([y, h], [(L, D), (D, N)])
    y_ref, h_ref = loop_scan(*inputs, h0=h0)
    np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), **TOL)
    np.testing.assert_allclose(np.asarray(h), np.asarray(h_ref), **TOL)


@pytest.mark.parametrize("method", ["associative", "sequential"])
@pytest.mark.parametrize("chunk_size", [None, 1, 3, 50])
@pytest.mark.parametrize("shared_delta", [False, True], ids=["delta_LD", "delta_L1"])
@pytest.mark.parametrize("backward", ["adjoint", "autodiff"])
def test_grads_match_loop_and_check_grads(method, chunk_size, shared_delta, backward):
    """Gradients of every input, the initial state included, under a loss on y and on the final
    state, against autodiff of the Python loop."""
    rng = np.random.default_rng(21 + shared_delta)
    L, D, N = 7, 2, 3
    inputs = tuple(map(jnp.asarray, make_inputs(rng, L, D, N, shared_delta)))
    h0 = jnp.asarray(rng.standard_normal((D, N)))
    w, v = jnp.asarray(rng.standard_normal((L, D))), jnp.asarray(rng.standard_normal((D, N)))

    def f(*a):
        y, h = selective_scan(*a[:5], h0=a[5], method=method, chunk_size=chunk_size,
                              return_state=True, backward=backward)
        return jnp.sum(w * y) + jnp.sum(v * h)

    def g(*a):
        y, h = loop_scan(*a[:5], h0=a[5])
        return jnp.sum(w * y) + jnp.sum(v * h)

    args = inputs + (h0,)
    grads = jax.jit(jax.grad(f, argnums=tuple(range(6))))(*args)
    expected = jax.grad(g, argnums=tuple(range(6)))(*args)
    for got, want in zip(grads, expected):
        chex.assert_equal_shape([got, want])
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-9, atol=1e-9)
    check_grads(jax.jit(f), args, order=1, modes=("rev",))


@pytest.mark.parametrize("method", ["associative", "sequential"])
def test_adjoint_grads_under_vmap_with_shared_A(method):
    """The layer's use: vmap over a batch with A shared, its gradient summed over the batch."""
    rng = np.random.default_rng(31)
    L, D, N, batch = 9, 3, 2, 4
    data = [make_inputs(rng, L, D, N, shared_delta=True) for _ in range(batch)]
    u, delta, _, B, C = (jnp.asarray(np.stack(x)) for x in zip(*data))
    A = jnp.asarray(data[0][2])

    def loss(A, u, backward):
        f = functools.partial(selective_scan, method=method, chunk_size=4, backward=backward)
        return jnp.sum(jnp.sin(jax.vmap(f, in_axes=(0, 0, None, 0, 0))(u, delta, A, B, C)))

    got = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2)(A, u, "adjoint")
    want = jax.grad(lambda A, u: sum(jnp.sum(jnp.sin(loop_scan(u[i], delta[i], A, B[i], C[i])[0]))
                                     for i in range(batch)), argnums=(0, 1))(A, u)
    for g_, w_ in zip(got, want):
        np.testing.assert_allclose(np.asarray(g_), np.asarray(w_), rtol=1e-9, atol=1e-9)


def test_unknown_backward_lists_valid_names():
    rng = np.random.default_rng(5)
    inputs = tuple(map(jnp.asarray, make_inputs(rng, 4, 2, 3)))
    with pytest.raises(ValueError, match="adjoint.*autodiff|autodiff.*adjoint"):
        selective_scan(*inputs, backward="finite-differences")


def _grad_temp_bytes(chunk_size, L=2048, D=8, N=8):
    rng = np.random.default_rng(0)
    inputs = [jnp.asarray(x, jnp.float32) for x in make_inputs(rng, L, D, N, True)]
    loss = lambda *a: jnp.sum(selective_scan(*a, method="sequential", chunk_size=chunk_size))
    compiled = jax.jit(jax.grad(loss, argnums=(0, 2, 3, 4))).lower(*inputs).compile()
    return compiled.memory_analysis().temp_size_in_bytes


@pytest.mark.float32
def test_chunks_bound_backward_memory():
    """Without chunks the backward pass keeps every (D, N) state of the L steps; with chunks of
    64 it keeps L/64 of them plus one chunk's."""
    full, chunked = _grad_temp_bytes(None), _grad_temp_bytes(64)
    state_bytes = 2048 * 8 * 8 * 4
    assert full >= state_bytes, (full, state_bytes)
    assert chunked < full / 4, (chunked, full)


def test_bad_chunk_size():
    rng = np.random.default_rng(5)
    inputs = tuple(map(jnp.asarray, make_inputs(rng, 4, 2, 3)))
    with pytest.raises(ValueError, match="chunk_size"):
        selective_scan(*inputs, chunk_size=-1)
