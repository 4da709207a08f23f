"""Naive NumPy / pure-Python reference implementations of the kernel contract.

Written directly from the contract in DESIGN.md ("Public API contract"), with explicit
loops over time (and, where cheap, over every index), so that they share no code with
``ssm_jax.kernels``. Everything here is float64 / complex128.
"""
import re

import numpy as np


# --------------------------------------------------------------------------- random inputs
def crandn(rng, shape):
    """Standard complex normal draws, complex128."""
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def stable_complex(rng, shape, rmin=0.5, rmax=0.99):
    """Complex numbers with modulus in [rmin, rmax] and uniform phase."""
    r = rng.uniform(rmin, rmax, shape)
    theta = rng.uniform(-np.pi, np.pi, shape)
    return r * np.exp(1j * theta)


def stable_real(rng, shape, rmin=0.5, rmax=0.99):
    """Reals with |x| in [rmin, rmax] and random sign."""
    return rng.uniform(rmin, rmax, shape) * rng.choice([-1.0, 1.0], shape)


def continuous_lambda(rng, shape):
    """Continuous-time diagonal state matrices with negative real part."""
    return -rng.uniform(0.1, 1.0, shape) + 1j * rng.uniform(-3.0, 3.0, shape)


# --------------------------------------------------------------------------- references
def naive_linear_recurrence(a, b, h0=None, reverse=False):
    """h[t] = a[t] h[t-1] + b[t] (or h[t] = a[t] h[t+1] + b[t] when reverse)."""
    b = np.asarray(b)
    a = np.broadcast_to(np.asarray(a), b.shape)
    dtype = np.result_type(a.dtype, b.dtype, np.float64)
    length = b.shape[0]
    h = np.zeros(b.shape, dtype)
    state = np.zeros(b.shape[1:], dtype) if h0 is None else np.array(h0, dtype)
    order = range(length - 1, -1, -1) if reverse else range(length)
    for t in order:
        flat_state = state.reshape(-1)
        flat_a = a[t].reshape(-1)
        flat_b = b[t].reshape(-1)
        new = np.empty_like(flat_state)
        for i in range(flat_state.size):  # elementwise, on purpose
            new[i] = flat_a[i] * flat_state[i] + flat_b[i]
        state = new.reshape(b.shape[1:])
        h[t] = state
    return h


def naive_ssm_kernel(Lambda_bar, B_bar, C, length, conj_sym=True):
    """K[h, l] = c Re(sum_n C[h,n] B_bar[h,n] Lambda_bar[h,n]**l)."""
    c = 2.0 if conj_sym else 1.0
    H, N = np.shape(Lambda_bar)
    K = np.zeros((H, length))
    for h in range(H):
        for n in range(N):
            coef = complex(C[h, n]) * complex(B_bar[h, n])
            lam = complex(Lambda_bar[h, n])
            power = 1.0 + 0j
            for l in range(length):
                K[h, l] += c * (coef * power).real
                power *= lam
    return K


def naive_causal_conv(u, K):
    """y[t, h] = sum_{s <= t} K[h, t-s] u[s, h] (direct sum, no FFT)."""
    L, H = np.shape(u)
    y = np.zeros((L, H))
    for t in range(L):
        for s in range(t + 1):
            y[t] += K[:, t - s] * u[s]
    return y


def naive_ssm_step(h, u_t, Lambda_bar, B_bar, C, conj_sym=True):
    c = 2.0 if conj_sym else 1.0
    h_new = Lambda_bar * h + B_bar * np.asarray(u_t)[:, None]
    y = c * np.real(np.sum(C * h_new, axis=-1))
    return h_new, y


def naive_ssm_recurrence(u, Lambda_bar, B_bar, C, conj_sym=True, h0=None, reverse=False):
    L, H = np.shape(u)
    N = np.shape(Lambda_bar)[1]
    state = np.zeros((H, N), np.complex128) if h0 is None else np.array(h0, np.complex128)
    y = np.zeros((L, H))
    order = range(L - 1, -1, -1) if reverse else range(L)
    for t in order:
        state, y[t] = naive_ssm_step(state, u[t], Lambda_bar, B_bar, C, conj_sym)
    return y


def naive_selective_scan(u, delta, A, B, C):
    """Selective SSM: ZOH on A, Euler on B; every index looped explicitly."""
    L, D = np.shape(u)
    N = np.shape(A)[1]
    delta = np.broadcast_to(delta, (L, D))
    dtype = np.result_type(u, delta, A, B, C, np.float64)
    x = np.zeros((D, N), dtype)
    y = np.zeros((L, D), dtype)
    for t in range(L):
        for d in range(D):
            for n in range(N):
                x[d, n] = (np.exp(delta[t, d] * A[d, n]) * x[d, n]
                           + delta[t, d] * B[t, n] * u[t, d])
            y[t, d] = sum(C[t, n] * x[d, n] for n in range(N))
    return y


def hippo_legs_reference(N):
    """HiPPO-LegS (A, B) from the entrywise formula."""
    A = np.zeros((N, N))
    B = np.zeros(N)
    for n in range(N):
        B[n] = np.sqrt(2 * n + 1)
        for k in range(N):
            if n > k:
                A[n, k] = -np.sqrt(2 * n + 1) * np.sqrt(2 * k + 1)
            elif n == k:
                A[n, k] = -(n + 1)
    return A, B


def hippo_normal_reference(N):
    """S = A + P P^T with P_n = sqrt(n + 1/2): the normal part of HiPPO-LegS."""
    A, _ = hippo_legs_reference(N)
    P = np.sqrt(np.arange(N) + 0.5)
    return A + np.outer(P, P)


# --------------------------------------------------------------------------- error messages
def shape_pattern(shape):
    """Regex matching a tuple repr of ``shape`` with flexible spacing: (8, 3) / (8,3) / (8,)."""
    shape = tuple(shape)
    if len(shape) == 0:
        return r"\(\)"
    if len(shape) == 1:
        return r"\(\s*%d\s*,?\s*\)" % shape[0]
    return r"\(\s*" + r"\s*,\s*".join(str(s) for s in shape) + r"\s*,?\s*\)"


def assert_message(excinfo, *patterns):
    """Every regex in ``patterns`` occurs in the exception message."""
    message = str(excinfo.value)
    for pattern in patterns:
        assert re.search(pattern, message), f"{pattern!r} not found in message {message!r}"
