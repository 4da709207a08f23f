"""S4's DPLR kernel (Cauchy sums + Woodbury at the roots of unity) against the dense bilinear
recurrence written here, in float64; the HiPPO-LegS NPLR form against the HiPPO matrix."""
import jax
import numpy as np
import pytest

from ssm_jax.kernels import dplr_kernel, hippo_legs, hippo_nplr
from ssm_jax.kernels.dplr import c_from_tilde, c_tilde, dplr_matrices


@pytest.fixture(autouse=True)
def x64():
    previous = jax.config.values["jax_enable_x64"]
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


def random_dplr(H=3, N=6, seed=0):
    rng = np.random.default_rng(seed)
    Lambda = -rng.uniform(0.1, 1.0, (H, N)) + 3j * rng.normal(size=(H, N))
    cn = lambda: rng.normal(size=(H, N)) + 1j * rng.normal(size=(H, N))
    return Lambda, 0.4 * cn(), cn(), cn(), np.array([0.1, 0.5, 0.03])[:H]


def dense_kernel(Lambda, P, B, C, step, L):
    """K[h, l] = 2 Re(C Abar^l Bbar), bilinear, by the recurrence x <- Abar x (numpy loops)."""
    H, N = Lambda.shape
    K = np.zeros((H, L))
    for h in range(H):
        A = np.diag(Lambda[h]) - np.outer(P[h], P[h].conj())
        I = np.eye(N)
        Abar = np.linalg.solve(I - step[h] / 2 * A, I + step[h] / 2 * A)
        x = np.linalg.solve(I - step[h] / 2 * A, step[h] * B[h])
        for l in range(L):
            K[h, l] = 2 * (C[h] @ x).real
            x = Abar @ x
    return K


@pytest.mark.parametrize("L", [1, 2, 15, 16, 64])
def test_dplr_kernel_equals_dense_recurrence(L):
    args = random_dplr()
    K = dplr_kernel(*args, L)
    assert K.shape == (3, L) and K.dtype == np.float64
    np.testing.assert_allclose(K, dense_kernel(*args, L), rtol=1e-10, atol=1e-12)


def test_c_tilde_parameterization():
    Lambda, P, B, C, step = random_dplr(seed=1)
    L = 32
    Abar, _ = dplr_matrices(Lambda, P, B, step)
    Ct = c_tilde(C, Abar, L)
    np.testing.assert_allclose(dplr_kernel(Lambda, P, B, Ct, step, L, c_tilde_given=True),
                               dense_kernel(Lambda, P, B, C, step, L), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(c_from_tilde(Ct, Abar, L), C, rtol=1e-10)
    # the low-rank term matters: without it the kernel differs
    assert np.abs(dplr_kernel(Lambda, 0 * P, B, C, step, L) - dense_kernel(Lambda, P, B, C, step, L)).max() > 1e-2


def test_hippo_nplr_is_legs_in_the_normal_eigenbasis():
    N = 8
    Lambda, P, B = hippo_nplr(N)
    assert Lambda.shape == P.shape == B.shape == (N // 2,)
    np.testing.assert_allclose(Lambda.real, -0.5, atol=1e-12)
    # full (both conjugate halves) reconstruction: V (Lambda - P P^H) V^H = A_LegS
    from ssm_jax.kernels import hippo_n
    Lf, V = hippo_n(N, conj_sym=False)
    A, b = hippo_legs(N)
    p = np.sqrt(np.arange(N) + 0.5)
    Pf = V.conj().T @ p
    np.testing.assert_allclose(V @ (np.diag(Lf) - np.outer(Pf, Pf.conj())) @ V.conj().T, A, atol=1e-10)
    # the kept half is the positive-imaginary half of that decomposition
    keep = Lf.imag > 0
    np.testing.assert_allclose(np.sort_complex(Lambda), np.sort_complex(Lf[keep]), atol=1e-10)
    np.testing.assert_allclose(np.abs(P), np.abs(Pf[keep][np.argsort(Lf[keep].imag)]), atol=1e-10)


def test_bad_shapes():
    Lambda, P, B, C, step = random_dplr()
    with pytest.raises(ValueError, match="DPLR parameters must match"):
        dplr_kernel(Lambda, P[:, :2], B, C, step, 8)
    with pytest.raises(ValueError, match="one step size per channel"):
        dplr_kernel(Lambda, P, B, C, step[:2], 8)
