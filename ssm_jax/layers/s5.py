"""S5: one diagonal MIMO SSM with P states over H features, run by a parallel (or sequential) scan."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ssm_jax.kernels import discretize, hippo_n, linear_recurrence, log_step_uniform, mimo_kernel
from ssm_jax.kernels._checks import check_rank, check_same


def _block_hippo_n(P: int, blocks: int, conj_sym: bool):
    """Block-diagonal HiPPO-N eigenbasis: Lambda (P',), V (P, P') with P' = P/2 if conj_sym."""
    if P % blocks:
        raise ValueError(f"d_state P={P} must be divisible by blocks={blocks}")
    size = P // blocks
    Lambda_b, V_b = hippo_n(size, conj_sym=conj_sym)
    Lambda = np.tile(Lambda_b, blocks)
    V = np.zeros((P, blocks * V_b.shape[1]), complex)
    for j in range(blocks):
        V[j * size:(j + 1) * size, j * V_b.shape[1]:(j + 1) * V_b.shape[1]] = V_b
    return Lambda, V


class S5(nn.Module):
    """S5 layer: ``x[t] = Lambda_bar * x[t-1] + B_bar u[t]``, ``y[t] = c Re(C x[t]) + D u[t]``.

    Parameters (real arrays; complex matrices as (..., 2) real/imaginary pairs):
    ``Lambda_re, Lambda_im`` (P',), ``B`` (P', H, 2), ``C`` (H, P', 2) (plus ``C_rev`` if
    bidirectional, sharing Lambda and B with the forward direction), ``log_step`` (P',), ``D`` (H,); ``P' = d_state // 2`` under
    ``conj_sym`` (c = 2), else ``P' = d_state`` (c = 1). Initialization: block-diagonal HiPPO-N
    eigenvalues, ``B = V^H B0`` and ``C = C0 V`` with Lecun-normal B0, C0 (S5's recipe).

    Intermediates (sown when "intermediates" is mutable): ``input`` (B, L, H) and ``kernel``
    (H, H, L) (plus ``kernel_rev``), the matrix-valued kernel of the layer.
    """

    features: int  # H
    d_state: int = 64  # P
    blocks: int = 1  # J blocks of the block-diagonal HiPPO-N initialization
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    discretization: str = "zoh"
    scan_method: str = "auto"
    conj_sym: bool = True
    bidirectional: bool = False
    clip_eigs: bool = False
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        H, P = self.features, self.d_state
        if self.conj_sym and (P // self.blocks) % 2:
            raise ValueError(f"conj_sym needs an even block size d_state/blocks, got {P}/{self.blocks}")
        Lambda0, V = _block_hippo_n(P, self.blocks, self.conj_sym)
        Pc = Lambda0.shape[0]
        dt = self.param_dtype
        const = lambda value: (lambda key, shape, dtype: jnp.asarray(value, dtype).reshape(shape))
        lecun = nn.initializers.lecun_normal()

        def pairs(z, dtype):  # complex (...) -> real (..., 2)
            return jnp.stack([z.real, z.imag], axis=-1).astype(dtype)

        def B_init(key, shape, dtype):  # B = V^H B0 with B0 ~ Lecun normal (P, H)
            B0 = lecun(key, (P, H), dtype)
            return pairs(jnp.asarray(V.conj().T) @ B0, dtype)

        def C_init(key, shape, dtype):  # C = C0 V with C0 complex, Lecun normal parts (H, P)
            k_re, k_im = jax.random.split(key)
            C0 = lecun(k_re, (H, P), dtype) + 1j * lecun(k_im, (H, P), dtype)
            return pairs(C0 @ jnp.asarray(V), dtype)

        self.Lambda_re = self.param("Lambda_re", const(Lambda0.real), (Pc,), dt)
        self.Lambda_im = self.param("Lambda_im", const(Lambda0.imag), (Pc,), dt)
        self.B = self.param("B", B_init, (Pc, H, 2), dt)
        self.C_params = {d: self.param("C" + d, C_init, (H, Pc, 2), dt) for d in self.directions}
        self.log_step = self.param("log_step", log_step_uniform, (Pc,), self.dt_min, self.dt_max, dt)
        self.D = self.param("D", nn.initializers.normal(1.0), (H,), dt)

    @property
    def directions(self):
        return ("", "_rev") if self.bidirectional else ("",)

    def discrete(self):
        """Discretized ``(Lambda_bar (P',), B_bar (P', H))``, complex."""
        re = jnp.minimum(self.Lambda_re, -1e-4) if self.clip_eigs else self.Lambda_re
        Lambda_bar, B_factor = discretize(re + 1j * self.Lambda_im, jnp.exp(self.log_step),
                                          self.discretization)
        return Lambda_bar, B_factor[:, None] * (self.B[..., 0] + 1j * self.B[..., 1])

    def __call__(self, u):
        """Args: u: (B, L, H) real. Returns y: (B, L, H) real."""
        check_rank("u", u, (3,), "(batch, L, H)")
        check_same("u[..., :]", u.shape[-1:], "features", (self.features,), "feature count H")
        self.sow("intermediates", "input", u)
        Lambda_bar, B_bar = self.discrete()
        Bu = jnp.einsum("blh,ph->blp", u.astype(B_bar.dtype), B_bar)  # (B, L, P')
        scale = 2.0 if self.conj_sym else 1.0
        y = self.D * u
        for d in self.directions:
            C = self.C_params[d][..., 0] + 1j * self.C_params[d][..., 1]  # (H, P')
            if self.is_mutable_collection("intermediates"):
                K = mimo_kernel(Lambda_bar, B_bar, C, u.shape[1], conj_sym=self.conj_sym)
                self.sow("intermediates", "kernel" + d, K)
            run = lambda b: linear_recurrence(Lambda_bar, b, reverse=(d == "_rev"),
                                              method=self.scan_method)
            x = jax.vmap(run)(Bu)  # (B, L, P')
            y = y + scale * jnp.einsum("blp,hp->blh", x, C).real
        return y
