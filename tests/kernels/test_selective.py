"""Tests of ssm_jax.kernels.selective_scan (input-dependent delta, B, C) against a naive loop."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import ssm_jax.kernels as kernels
import ssm_jax.kernels.selective as sel

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
@pytest.mark.parametrize("backward", ["adjoint", "chunkwise", "autodiff", "auto"])
def test_grads(method, backward):
    rng = np.random.default_rng(3)
    inputs = tuple(map(jnp.asarray, make_inputs(rng, 5, 2, 3)))
    f = jax.jit(functools.partial(selective_scan, method=method, backward=backward))
    # only plain autodiff has forward mode; the others are custom VJPs
    check_grads(f, inputs, order=1, modes=("fwd", "rev") if backward == "autodiff" else ("rev",))


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


@pytest.mark.parametrize("bad", [0, 2])  # u, A
def test_integer_or_misshapen_inputs_are_one_error_naming_them(bad):
    rng = np.random.default_rng(6)
    inputs = list(map(jnp.asarray, make_inputs(rng, 4, 2, 3)))
    inputs[bad] = inputs[bad].astype(jnp.int32)
    name = ["u", "delta", "A"][bad]
    with pytest.raises(ValueError, match=f"^{name} must be a real floating-point array, got dtype int32"):
        selective_scan(*inputs)
    inputs[bad] = inputs[bad].astype(jnp.float32)[None]
    with pytest.raises(ValueError, match=rf"^{name} must be \(\w, \w\), got shape"):
        selective_scan(*inputs)


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


CHUNKS = [None, 0, 1, 3, 4, 50]


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
@pytest.mark.parametrize("chunk_size", [0, 1, 3, 50])
@pytest.mark.parametrize("shared_delta", [False, True], ids=["delta_LD", "delta_L1"])
@pytest.mark.parametrize("backward", ["adjoint", "chunkwise", "autodiff"])
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


def _grad_temp_bytes(L=2048, D=8, N=8, shared_delta=True, **kwargs):
    """XLA's temporary bytes of the compiled gradient of sum(selective_scan(..., **kwargs))."""
    rng = np.random.default_rng(0)
    inputs = [jnp.asarray(x, jnp.float32) for x in make_inputs(rng, L, D, N, shared_delta)]
    loss = lambda *a: jnp.sum(selective_scan(*a, method="sequential", **kwargs))
    compiled = jax.jit(jax.grad(loss, argnums=(0, 2, 3, 4))).lower(*inputs).compile()
    return compiled.memory_analysis().temp_size_in_bytes


@pytest.mark.float32
def test_chunks_bound_backward_memory():
    """Without chunks the backward pass keeps every (D, N) state of the L steps; with chunks of
    64 it keeps L/64 of them plus one chunk's."""
    full, chunked = _grad_temp_bytes(chunk_size=0), _grad_temp_bytes(chunk_size=64)
    state_bytes = 2048 * 8 * 8 * 4
    assert full >= state_bytes, (full, state_bytes)
    assert chunked < full / 4, (chunked, full)


def test_bad_chunk_size():
    rng = np.random.default_rng(5)
    inputs = tuple(map(jnp.asarray, make_inputs(rng, 4, 2, 3)))
    with pytest.raises(ValueError, match="chunk_size"):
        selective_scan(*inputs, chunk_size=-1)


# ------------------------------------------------------------------------- kernel defaults
def test_default_chunk_size_rule():
    """The chooser's documented rule: 32 steps on CPU, 8 for the adjoint when D * N > 256,
    never more than L; on accelerators the largest power of two with K * D * N <= 2**20."""
    assert sel.CPU_CHUNK_CHOICES == (8, 32)
    for backward in ("adjoint", "chunkwise", "autodiff"):
        assert sel.default_chunk_size(500, 16, 4, backward, "cpu") == 32
        assert sel.default_chunk_size(10, 16, 4, backward, "cpu") == 10  # one chunk
    assert sel.default_chunk_size(500, 128, 16, "adjoint", "cpu") == 8
    assert sel.default_chunk_size(500, 16, 16, "adjoint", "cpu") == 32  # D * N = 256
    assert sel.default_chunk_size(2048, 256, 16, "chunkwise", "cpu") == 32
    assert sel.default_chunk_size(2048, 256, 16, "adjoint", "gpu") == 256
    assert sel.default_chunk_size(100, 16, 4, "adjoint", "gpu") == 100
    assert sel.default_backward(True, "cpu") == "adjoint"
    assert sel.default_backward(False, "cpu") == "chunkwise"
    assert sel.default_backward(False, "gpu") == "adjoint"


@pytest.mark.float32
@pytest.mark.parametrize("shared_delta", [True, False], ids=["delta_L1", "delta_LD"])
def test_default_call_uses_the_chooser(shared_delta):
    """The call with default arguments is the chooser's chunked scan: its backward memory equals
    the explicit call's and is a small fraction of one chunk's (fails if the chooser is off)."""
    L, D, N = 2048, 8, 8
    backward = sel.default_backward(shared_delta, jax.default_backend())
    K = sel.default_chunk_size(L, D, N, backward, jax.default_backend())
    assert K < L
    default = _grad_temp_bytes(L, D, N, shared_delta)
    explicit = _grad_temp_bytes(L, D, N, shared_delta, chunk_size=K, backward=backward)
    one_chunk = _grad_temp_bytes(L, D, N, shared_delta, chunk_size=0, backward=backward)
    assert default == explicit, (default, explicit)
    assert default < one_chunk / 4, (default, one_chunk)


# (L, D, N) for which the CPU chooser picks each chunk size: K = 8 (adjoint, D * N > 256), K = 32
# (several chunks, the last one padded), one chunk (L <= 32).
DEFAULT_SHAPES = {"K8": (19, 17, 16), "K32": (69, 3, 4), "one_chunk": (5, 3, 4)}


@pytest.mark.parametrize("backward", ["adjoint", "chunkwise", "autodiff", "auto"])
@pytest.mark.parametrize("shape", list(DEFAULT_SHAPES))
@pytest.mark.parametrize("shared_delta", [True, False], ids=["delta_L1", "delta_LD"])
def test_default_chunks_match_loop(backward, shape, shared_delta):
    """Values, final state and gradients of every input with the default chunk size (and
    method) against autodiff of the Python loop, for every chunk size the chooser picks."""
    resolved = sel.default_backward(shared_delta, "cpu") if backward == "auto" else backward
    if shape == "K8" and resolved != "adjoint":
        pytest.skip("the chooser picks K = 8 for the adjoint only")
    L, D, N = DEFAULT_SHAPES[shape]
    K = sel.default_chunk_size(L, D, N, resolved, "cpu")
    assert K == {"K8": 8, "K32": 32, "one_chunk": L}[shape]
    rng = np.random.default_rng(41 + L + shared_delta)
    inputs = tuple(map(jnp.asarray, make_inputs(rng, L, D, N, shared_delta)))
    h0 = jnp.asarray(rng.standard_normal((D, N)))
    w, v = jnp.asarray(rng.standard_normal((L, D))), jnp.asarray(rng.standard_normal((D, N)))

    def f(*a):
        y, h = selective_scan(*a[:5], h0=a[5], return_state=True, backward=backward)
        return jnp.sum(w * y) + jnp.sum(v * h), (y, h)

    def g(*a):
        y, h = loop_scan(*a[:5], h0=a[5])
        return jnp.sum(w * y) + jnp.sum(v * h), (y, h)

    args = inputs + (h0,)
    grads, (y, h) = jax.jit(jax.grad(f, argnums=tuple(range(6)), has_aux=True))(*args)
    expected, (y_ref, h_ref) = jax.grad(g, argnums=tuple(range(6)), has_aux=True)(*args)
    np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), **TOL)
    np.testing.assert_allclose(np.asarray(h), np.asarray(h_ref), **TOL)
    y_fwd = jax.jit(lambda *a: selective_scan(*a, backward=backward))(*inputs)
    np.testing.assert_allclose(np.asarray(y_fwd), naive_selective_scan(*map(np.asarray, inputs)),
                               **TOL)
    for got, want in zip(grads, expected):
        chex.assert_equal_shape([got, want])
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("shared_delta", [True, False], ids=["delta_L1", "delta_LD"])
def test_default_grads_under_vmap_with_shared_A(shared_delta):
    """The layer's use with every default: vmap over a batch, A shared, several chunks."""
    rng = np.random.default_rng(51)
    L, D, N, batch = 40, 3, 2, 3
    data = [make_inputs(rng, L, D, N, shared_delta) for _ in range(batch)]
    u, delta, _, B, C = (jnp.asarray(np.stack(x)) for x in zip(*data))
    A = jnp.asarray(data[0][2])
    assert sel.default_chunk_size(L, D, N, sel.default_backward(shared_delta, "cpu"), "cpu") < L

    def loss(A, u, B):
        y = jax.vmap(selective_scan, in_axes=(0, 0, None, 0, 0))(u, delta, A, B, C)
        return jnp.sum(jnp.sin(y))

    def loop_loss(A, u, B):
        return sum(jnp.sum(jnp.sin(loop_scan(u[i], delta[i], A, B[i], C[i])[0]))
                   for i in range(batch))

    got = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(A, u, B)
    want = jax.grad(loop_loss, argnums=(0, 1, 2))(A, u, B)
    for g_, w_ in zip(got, want):
        np.testing.assert_allclose(np.asarray(g_), np.asarray(w_), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("backward", ["adjoint", "chunkwise"])
@pytest.mark.parametrize("chunk_size", [None, *sel.CPU_CHUNK_CHOICES])
def test_associative_chunks_equal_sequential(backward, chunk_size):
    """The accelerator path (associative scan in chunks, custom backward) gives the sequential
    path's values and gradients in float64."""
    rng = np.random.default_rng(61)
    L, D, N = 75, 17, 16
    inputs = tuple(map(jnp.asarray, make_inputs(rng, L, D, N, shared_delta=True)))
    w = jnp.asarray(rng.standard_normal((L, D)))

    def run(method):
        f = lambda *a: jnp.sum(w * selective_scan(*a, method=method, chunk_size=chunk_size,
                                                  backward=backward))
        y = jax.jit(lambda *a: selective_scan(*a, method=method, chunk_size=chunk_size))(*inputs)
        return y, jax.jit(jax.grad(f, argnums=tuple(range(5))))(*inputs)

    (y_a, g_a), (y_s, g_s) = run("associative"), run("sequential")
    np.testing.assert_allclose(np.asarray(y_a), np.asarray(y_s), **TOL)
    for a, b in zip(g_a, g_s):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-9)


def test_forward_mode_with_chunks_needs_plain_autodiff():
    """backward="autodiff" keeps forward-mode derivatives with chunks; the default (a custom
    VJP) does not and says so."""
    rng = np.random.default_rng(71)
    inputs = tuple(map(jnp.asarray, make_inputs(rng, 40, 2, 3)))
    tangents = tuple(jnp.ones_like(x) for x in inputs)
    f = lambda *a: selective_scan(*a, chunk_size=8, backward="autodiff")
    _, jvp = jax.jvp(f, inputs, tangents)
    g = lambda *a: loop_scan(*a)[0]
    _, want = jax.jvp(g, inputs, tangents)
    np.testing.assert_allclose(np.asarray(jvp), np.asarray(want), rtol=1e-9, atol=1e-9)
    with pytest.raises(TypeError, match="custom_vjp"):
        jax.jvp(lambda *a: selective_scan(*a, chunk_size=8), inputs, tangents)
