"""Tests of ssm_kernel, causal_conv, ssm_step and ssm_recurrence (the SISO diagonal SSM)."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from ssm_jax.kernels import causal_conv, ssm_kernel, ssm_recurrence, ssm_step

from .reference import (assert_message, crandn, naive_causal_conv, naive_ssm_kernel,
                        naive_ssm_recurrence, naive_ssm_step, shape_pattern, stable_complex)

TOL = dict(rtol=1e-10, atol=1e-10)
METHODS = ["associative", "sequential", "auto"]

# Jitted entry point for the recurrence (eager associative scans dispatch op by op, slowly).
SR = jax.jit(ssm_recurrence, static_argnames=("conj_sym", "method", "reverse"))


def make_ssm(rng, H, N):
    """Discrete SISO diagonal SSMs: |Lambda_bar| < 1, O(1) B_bar and C."""
    Lambda_bar = stable_complex(rng, (H, N), rmin=0.6, rmax=0.98)
    B_bar = crandn(rng, (H, N)) / np.sqrt(N)
    C = crandn(rng, (H, N)) / np.sqrt(N)
    return Lambda_bar, B_bar, C


def conj_pairs(Lambda_bar, B_bar, C):
    """The full system: each mode together with its complex conjugate."""
    return tuple(np.concatenate([x, np.conj(x)], axis=-1) for x in (Lambda_bar, B_bar, C))


def j(*xs):
    return tuple(jnp.asarray(x) for x in xs)


# --------------------------------------------------------------------------- ssm_kernel
@pytest.mark.parametrize("conj_sym", [True, False])
@pytest.mark.parametrize("H,N,length", [(3, 4, 1), (3, 4, 7), (3, 4, 64), (1, 1, 5), (2, 16, 33)])
def test_ssm_kernel_matches_naive(conj_sym, H, N, length):
    rng = np.random.default_rng(100 + H * 1000 + N * 10 + length)
    params = make_ssm(rng, H, N)
    K = ssm_kernel(*j(*params), length, conj_sym=conj_sym)
    chex.assert_shape(K, (H, length))
    assert not jnp.iscomplexobj(K)
    np.testing.assert_allclose(np.asarray(K), naive_ssm_kernel(*params, length, conj_sym), **TOL)


def test_ssm_kernel_with_unit_modulus_modes():
    """|Lambda_bar| = 1 (no decay), including the real values 1 and -1."""
    rng = np.random.default_rng(101)
    Lambda_bar = np.array([[np.exp(0.3j), np.exp(-2.0j)], [1.0 + 0j, -1.0 + 0j]])
    B_bar, C = crandn(rng, (2, 2)), crandn(rng, (2, 2))
    for conj_sym in (True, False):
        K = ssm_kernel(*j(Lambda_bar, B_bar, C), 40, conj_sym=conj_sym)
        np.testing.assert_allclose(np.asarray(K),
                                   naive_ssm_kernel(Lambda_bar, B_bar, C, 40, conj_sym), **TOL)


def test_ssm_kernel_with_zero_mode():
    """Lambda_bar = 0 (e.g. bilinear with step*Lambda = -2): that mode is C B at l = 0 only
    (0**0 = 1), and it must not poison the other modes of the channel."""
    rng = np.random.default_rng(101)
    Lambda_bar = np.array([[np.exp(0.3j) * 0.9, 0.0], [0.5 + 0.5j, 0.0]])
    B_bar, C = crandn(rng, (2, 2)), crandn(rng, (2, 2))
    for conj_sym in (True, False):
        K = ssm_kernel(*j(Lambda_bar, B_bar, C), 40, conj_sym=conj_sym)
        np.testing.assert_allclose(np.asarray(K),
                                   naive_ssm_kernel(Lambda_bar, B_bar, C, 40, conj_sym), **TOL)


@pytest.mark.parametrize("chunk_size", [1, 3, 16, 64, 100, 5000])
def test_ssm_kernel_chunk_size_does_not_matter(chunk_size):
    rng = np.random.default_rng(102)
    params = j(*make_ssm(rng, 3, 5))
    length = 100
    reference = ssm_kernel(*params, length)
    K = ssm_kernel(*params, length, chunk_size=chunk_size)
    chex.assert_shape(K, (3, length))
    np.testing.assert_allclose(np.asarray(K), np.asarray(reference), rtol=1e-12, atol=1e-12)


def test_ssm_kernel_long_length_chunked():
    """A long kernel, computed in chunks, still equals the naive sum."""
    rng = np.random.default_rng(103)
    params = make_ssm(rng, 2, 3)
    params = (stable_complex(rng, (2, 3), rmin=0.998, rmax=0.9995),) + params[1:]
    length = 4096
    expected = naive_ssm_kernel(*params, length)
    for chunk_size in (None, 256, 1000):
        K = ssm_kernel(*j(*params), length, chunk_size=chunk_size)
        np.testing.assert_allclose(np.asarray(K), expected, rtol=1e-9, atol=1e-10)


def test_ssm_kernel_conj_sym_equals_full_system():
    rng = np.random.default_rng(104)
    half = make_ssm(rng, 4, 3)
    full = conj_pairs(*half)
    K_half = ssm_kernel(*j(*half), 50, conj_sym=True)
    K_full = ssm_kernel(*j(*full), 50, conj_sym=False)
    np.testing.assert_allclose(np.asarray(K_half), np.asarray(K_full), **TOL)


def test_ssm_kernel_jit_and_vmap():
    rng = np.random.default_rng(105)
    stacked = [make_ssm(rng, 3, 4) for _ in range(3)]
    Lb, Bb, C = (jnp.asarray(np.stack(x)) for x in zip(*stacked))
    f = jax.jit(ssm_kernel, static_argnames=("length", "conj_sym", "chunk_size"))
    batched = jax.vmap(lambda a, b, c: ssm_kernel(a, b, c, 20))(Lb, Bb, C)
    chex.assert_shape(batched, (3, 3, 20))
    for i in range(3):
        expected = naive_ssm_kernel(*stacked[i], 20)
        np.testing.assert_allclose(np.asarray(f(Lb[i], Bb[i], C[i], length=20)), expected, **TOL)
        np.testing.assert_allclose(
            np.asarray(f(Lb[i], Bb[i], C[i], length=20, chunk_size=7)), expected, **TOL)
        np.testing.assert_allclose(np.asarray(batched[i]), expected, **TOL)


@pytest.mark.parametrize("conj_sym", [True, False])
def test_ssm_kernel_grads(conj_sym):
    rng = np.random.default_rng(106)
    params = j(*make_ssm(rng, 2, 3))
    f = functools.partial(ssm_kernel, length=6, conj_sym=conj_sym)
    check_grads(f, params, order=1, modes=("fwd", "rev"))
    g = functools.partial(ssm_kernel, length=6, conj_sym=conj_sym, chunk_size=4)
    check_grads(g, params, order=1, modes=("fwd", "rev"))


@pytest.mark.float32
def test_ssm_kernel_float32():
    rng = np.random.default_rng(107)
    params = [jnp.asarray(x, dtype=jnp.complex64) for x in make_ssm(rng, 3, 4)]
    for chunk_size in (None, 5):
        K = ssm_kernel(*params, 16, chunk_size=chunk_size)
        chex.assert_type(K, jnp.float32)
        chex.assert_shape(K, (3, 16))
        np.testing.assert_allclose(np.asarray(K),
                                   naive_ssm_kernel(*map(np.asarray, params), 16),
                                   rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- causal_conv
@pytest.mark.parametrize("L,H", [(1, 1), (1, 3), (7, 3), (64, 3), (33, 2)])
def test_causal_conv_matches_naive(L, H):
    rng = np.random.default_rng(200 + L * 10 + H)
    u = rng.standard_normal((L, H))
    K = rng.standard_normal((H, L))
    y = causal_conv(jnp.asarray(u), jnp.asarray(K))
    chex.assert_shape(y, (L, H))
    assert not jnp.iscomplexobj(y)
    np.testing.assert_allclose(np.asarray(y), naive_causal_conv(u, K), **TOL)


def test_causal_conv_no_wraparound():
    """An impulse at the last step must not leak into earlier outputs (circular conv would)."""
    rng = np.random.default_rng(201)
    L, H = 16, 2
    K = rng.standard_normal((H, L))
    u_first = np.zeros((L, H))
    u_first[0] = 1.0
    np.testing.assert_allclose(np.asarray(causal_conv(jnp.asarray(u_first), jnp.asarray(K))),
                               K.T, **TOL)
    u_last = np.zeros((L, H))
    u_last[-1] = 1.0
    y = np.asarray(causal_conv(jnp.asarray(u_last), jnp.asarray(K)))
    expected = np.zeros((L, H))
    expected[-1] = K[:, 0]
    np.testing.assert_allclose(y, expected, **TOL)


def test_causal_conv_is_causal():
    """Changing u after time t does not change y up to time t."""
    rng = np.random.default_rng(202)
    L, H, t = 20, 3, 9
    u = rng.standard_normal((L, H))
    K = jnp.asarray(rng.standard_normal((H, L)))
    u2 = u.copy()
    u2[t + 1:] = rng.standard_normal((L - t - 1, H))
    y1 = causal_conv(jnp.asarray(u), K)
    y2 = causal_conv(jnp.asarray(u2), K)
    np.testing.assert_allclose(np.asarray(y1[:t + 1]), np.asarray(y2[:t + 1]), **TOL)


def test_causal_conv_jit_and_vmap():
    rng = np.random.default_rng(203)
    B, L, H = 4, 12, 3
    u = jnp.asarray(rng.standard_normal((B, L, H)))
    K = jnp.asarray(rng.standard_normal((H, L)))
    Ks = jnp.asarray(rng.standard_normal((B, H, L)))
    shared = jax.vmap(causal_conv, in_axes=(0, None))(u, K)
    per_seq = jax.jit(jax.vmap(causal_conv))(u, Ks)
    chex.assert_shape([shared, per_seq], (B, L, H))
    for i in range(B):
        np.testing.assert_allclose(np.asarray(shared[i]),
                                   naive_causal_conv(np.asarray(u[i]), np.asarray(K)), **TOL)
        np.testing.assert_allclose(np.asarray(per_seq[i]),
                                   naive_causal_conv(np.asarray(u[i]), np.asarray(Ks[i])), **TOL)
        np.testing.assert_allclose(np.asarray(jax.jit(causal_conv)(u[i], K)),
                                   np.asarray(shared[i]), **TOL)


def test_causal_conv_grads():
    rng = np.random.default_rng(204)
    u = jnp.asarray(rng.standard_normal((6, 2)))
    K = jnp.asarray(rng.standard_normal((2, 6)))
    check_grads(causal_conv, (u, K), order=1, modes=("fwd", "rev"))


@pytest.mark.float32
def test_causal_conv_float32():
    rng = np.random.default_rng(205)
    u = jnp.asarray(rng.standard_normal((10, 3)), dtype=jnp.float32)
    K = jnp.asarray(rng.standard_normal((3, 10)), dtype=jnp.float32)
    y = causal_conv(u, K)
    chex.assert_type(y, jnp.float32)
    chex.assert_shape(y, (10, 3))
    np.testing.assert_allclose(np.asarray(y), naive_causal_conv(np.asarray(u), np.asarray(K)),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("u_shape,K_shape", [((7, 3), (3, 8)), ((7, 3), (4, 7)),
                                             ((8, 3), (3, 7)), ((7, 3), (2, 8))])
def test_causal_conv_mismatched_shapes(u_shape, K_shape):
    with pytest.raises(ValueError) as excinfo:
        causal_conv(jnp.ones(u_shape), jnp.ones(K_shape))
    assert_message(excinfo, r"\bu\b|\bK\b", shape_pattern(u_shape), shape_pattern(K_shape))


@pytest.mark.parametrize("u_shape,K_shape", [((7,), (1, 7)), ((2, 7, 3), (3, 7)),
                                             ((7, 3), (3 * 7,))])
def test_causal_conv_wrong_rank(u_shape, K_shape):
    with pytest.raises(ValueError) as excinfo:
        causal_conv(jnp.ones(u_shape), jnp.ones(K_shape))
    assert_message(excinfo, r"\bu\b|\bK\b")


# --------------------------------------------------------------------------- ssm_step
@pytest.mark.parametrize("conj_sym", [True, False])
def test_ssm_step_matches_formula(conj_sym):
    rng = np.random.default_rng(300)
    H, N = 3, 4
    Lambda_bar, B_bar, C = make_ssm(rng, H, N)
    h = crandn(rng, (H, N))
    u_t = rng.standard_normal(H)
    h_new, y_t = ssm_step(*j(h, u_t, Lambda_bar, B_bar, C), conj_sym=conj_sym)
    chex.assert_shape(h_new, (H, N))
    chex.assert_shape(y_t, (H,))
    assert jnp.iscomplexobj(h_new) and not jnp.iscomplexobj(y_t)
    # written out index by index
    c = 2.0 if conj_sym else 1.0
    for hh in range(H):
        acc = 0j
        for n in range(N):
            expected = Lambda_bar[hh, n] * h[hh, n] + B_bar[hh, n] * u_t[hh]
            np.testing.assert_allclose(complex(h_new[hh, n]), expected, **TOL)
            acc += C[hh, n] * expected
        np.testing.assert_allclose(float(y_t[hh]), c * acc.real, **TOL)


@pytest.mark.float32
def test_ssm_step_float32():
    rng = np.random.default_rng(301)
    Lb, Bb, C = (jnp.asarray(x, jnp.complex64) for x in make_ssm(rng, 3, 4))
    h = jnp.zeros((3, 4), jnp.complex64)
    u_t = jnp.asarray(rng.standard_normal(3), jnp.float32)
    h_new, y_t = jax.jit(ssm_step)(h, u_t, Lb, Bb, C)
    chex.assert_type(h_new, jnp.complex64)
    chex.assert_type(y_t, jnp.float32)
    chex.assert_shape([h_new, y_t], [(3, 4), (3,)])


# --------------------------------------------------------------------------- ssm_recurrence
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("conj_sym", [True, False])
@pytest.mark.parametrize("L", [1, 7, 64])
def test_conv_equals_recurrence_equals_steps(method, conj_sym, L):
    rng = np.random.default_rng(400 + L)
    H, N = 3, 4
    params = make_ssm(rng, H, N)
    u = rng.standard_normal((L, H))
    jparams = j(*params)
    ju = jnp.asarray(u)

    y_conv = causal_conv(ju, ssm_kernel(*jparams, L, conj_sym=conj_sym))
    y_rec = SR(ju, *jparams, conj_sym=conj_sym, method=method)
    step = jax.jit(functools.partial(ssm_step, conj_sym=conj_sym))
    h = jnp.zeros((H, N), jnp.complex128)
    y_steps = []
    for t in range(L):
        h, y_t = step(h, ju[t], *jparams)
        y_steps.append(y_t)
    y_steps = np.stack([np.asarray(y) for y in y_steps])

    expected = naive_ssm_recurrence(u, *params, conj_sym=conj_sym)
    chex.assert_shape([y_conv, y_rec], (L, H))
    assert not jnp.iscomplexobj(y_rec)
    np.testing.assert_allclose(np.asarray(y_rec), expected, **TOL)
    np.testing.assert_allclose(np.asarray(y_conv), expected, **TOL)
    np.testing.assert_allclose(y_steps, expected, **TOL)
    # and directly against the naive kernel + naive convolution
    np.testing.assert_allclose(
        expected, naive_causal_conv(u, naive_ssm_kernel(*params, L, conj_sym)), **TOL)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("with_h0", [False, True], ids=["zeros", "h0"])
def test_ssm_recurrence_h0_and_reverse(method, reverse, with_h0):
    rng = np.random.default_rng(500)
    H, N, L = 2, 3, 9
    params = make_ssm(rng, H, N)
    u = rng.standard_normal((L, H))
    h0 = crandn(rng, (H, N)) if with_h0 else None
    y = SR(jnp.asarray(u), *j(*params), method=method, reverse=reverse,
                       h0=None if h0 is None else jnp.asarray(h0))
    chex.assert_shape(y, (L, H))
    np.testing.assert_allclose(
        np.asarray(y), naive_ssm_recurrence(u, *params, h0=h0, reverse=reverse), **TOL)


def test_ssm_recurrence_h0_continues_steps():
    """Running the second half from the state after the first half equals one run."""
    rng = np.random.default_rng(501)
    H, N, L = 2, 3, 12
    Lb, Bb, C = j(*make_ssm(rng, H, N))
    u = jnp.asarray(rng.standard_normal((L, H)))
    h = jnp.zeros((H, N), jnp.complex128)
    for t in range(L // 2):
        h, _ = ssm_step(h, u[t], Lb, Bb, C)
    y_second = SR(u[L // 2:], Lb, Bb, C, h0=h)
    y_full = ssm_recurrence(u, Lb, Bb, C)  # eager, default method
    np.testing.assert_allclose(np.asarray(y_second), np.asarray(y_full[L // 2:]), **TOL)


@pytest.mark.parametrize("method", ["associative", "sequential"])
def test_conj_sym_equals_full_system(method):
    """conj_sym=True on half the modes == conj_sym=False on explicit conjugate pairs."""
    rng = np.random.default_rng(600)
    H, N, L = 3, 4, 20
    half = make_ssm(rng, H, N)
    full = conj_pairs(*half)
    u = rng.standard_normal((L, H))
    ju = jnp.asarray(u)
    y_half = SR(ju, *j(*half), conj_sym=True, method=method)
    y_full = SR(ju, *j(*full), conj_sym=False, method=method)
    np.testing.assert_allclose(np.asarray(y_half), np.asarray(y_full), **TOL)
    h_half = jnp.asarray(crandn(rng, (H, N)))
    h_full = jnp.concatenate([h_half, jnp.conj(h_half)], axis=-1)
    _, y1 = ssm_step(h_half, ju[0], *j(*half), conj_sym=True)
    _, y2 = ssm_step(h_full, ju[0], *j(*full), conj_sym=False)
    np.testing.assert_allclose(np.asarray(y1), np.asarray(y2), **TOL)


@pytest.mark.parametrize("method", METHODS)
def test_ssm_recurrence_jit_and_vmap(method):
    rng = np.random.default_rng(700)
    B, H, N, L = 3, 2, 3, 10
    params = make_ssm(rng, H, N)
    u = rng.standard_normal((B, L, H))
    f = functools.partial(ssm_recurrence, method=method)
    batched = jax.jit(jax.vmap(f, in_axes=(0, None, None, None)))(jnp.asarray(u), *j(*params))
    chex.assert_shape(batched, (B, L, H))
    for i in range(B):
        np.testing.assert_allclose(np.asarray(batched[i]),
                                   naive_ssm_recurrence(u[i], *params), **TOL)


@pytest.mark.parametrize("method", ["associative", "sequential"])
def test_ssm_recurrence_grads_match_conv_grads(method):
    rng = np.random.default_rng(800)
    H, N, L = 2, 3, 8
    params = j(*make_ssm(rng, H, N))
    u = jnp.asarray(rng.standard_normal((L, H)))
    g = jnp.asarray(rng.standard_normal((L, H)))

    @jax.jit
    def loss_rec(u, Lb, Bb, C):
        return jnp.sum(g * ssm_recurrence(u, Lb, Bb, C, method=method))

    @jax.jit
    def loss_conv(u, Lb, Bb, C):
        return jnp.sum(g * causal_conv(u, ssm_kernel(Lb, Bb, C, L)))

    grads_rec = jax.grad(loss_rec, argnums=(0, 1, 2, 3))(u, *params)
    grads_conv = jax.grad(loss_conv, argnums=(0, 1, 2, 3))(u, *params)
    for a, b in zip(grads_rec, grads_conv):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), **TOL)
    check_grads(loss_rec, (u, *params), order=1, modes=("fwd", "rev"))


@pytest.mark.float32
@pytest.mark.parametrize("method", METHODS)
def test_ssm_recurrence_float32(method):
    rng = np.random.default_rng(900)
    Lb, Bb, C = (jnp.asarray(x, jnp.complex64) for x in make_ssm(rng, 2, 3))
    u = jnp.asarray(rng.standard_normal((7, 2)), jnp.float32)
    y = SR(u, Lb, Bb, C, method=method)
    chex.assert_type(y, jnp.float32)
    chex.assert_shape(y, (7, 2))
