"""S5: one diagonal MIMO SSM with P states over H features, run by a parallel (or sequential) scan."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ssm_jax.kernels import (DISCRETIZATIONS, SCAN_METHODS, discretize, hippo_n, input_projection,
                             linear_recurrence, log_step_uniform, mimo_kernel, output_projection)
from ssm_jax.kernels.checks import check_rank, check_same
from ssm_jax.layers.base import SSMLayer, register_layer
from ssm_jax.options import option, require


def _block_hippo_n(P: int, blocks: int, conj_sym: bool):
    """Block-diagonal HiPPO-N eigenbasis: Lambda (M,), V (P, M) with M = P/2 if conj_sym."""
    if P % blocks:
        raise ValueError(f"d_state P={P} must be divisible by blocks={blocks}")
    size = P // blocks
    Lambda_b, V_b = hippo_n(size, conj_sym=conj_sym)
    Lambda = np.tile(Lambda_b, blocks)
    V = np.zeros((P, blocks * V_b.shape[1]), complex)
    for j in range(blocks):
        V[j * size:(j + 1) * size, j * V_b.shape[1]:(j + 1) * V_b.shape[1]] = V_b
    return Lambda, V


@register_layer("s5")
class S5(SSMLayer):
    """S5 layer: ``x[t] = Lambda_bar * x[t-1] + B_bar u[t]``, ``y[t] = scale * Re(C x[t]) + D u[t]`` (scale = 2 under conj_sym, else 1).

    Parameters (real arrays; complex matrices as (..., 2) real/imaginary pairs):
    ``Lambda_re, Lambda_im`` (M,), ``B`` (M, H, 2), ``C`` (H, M, 2) (plus ``C_rev`` if
    bidirectional, sharing Lambda and B with the forward direction), ``log_step`` (M,),
    ``D`` (H,); ``M = d_state // 2`` stored modes under ``conj_sym`` (read out as 2 Re), else
    ``M = P = d_state``. Initialization: block-diagonal HiPPO-N eigenvalues, ``B = V^H B0``
    and ``C = C0 V`` with Lecun-normal B0, C0 (S5's recipe).

    Intermediates (sown when "intermediates" is mutable): ``input`` (batch, L, H) and
    ``kernel`` (H, H, L) (plus ``kernel_rev``), the matrix-valued kernel of the layer.

    Protocol: eigenvalues ``(M,)`` complex and step sizes ``(M,)``.
    """

    features: int  # H
    d_state: int = option(64, "state size P (stored modes M = P/2 with conj_sym)", positive=True)
    blocks: int = option(1, "J blocks of the block-diagonal HiPPO-N initialization", positive=True)
    dt_min: float = option(1e-3, "smallest initial step size", positive=True)
    dt_max: float = option(1e-1, "largest initial step size", positive=True)
    discretization: str = option("zoh", "discretization method", choices=DISCRETIZATIONS)
    scan_method: str = option("auto", "scan backend", choices=SCAN_METHODS)
    conj_sym: bool = option(True, "store one eigenvalue of each conjugate pair (read out 2 Re)")
    bidirectional: bool = option(False, "add a backward-in-time output map C_rev")
    clip_eigs: bool = option(False, "use min(Re Lambda, -1e-4) in the forward pass")
    param_dtype: jnp.dtype = jnp.float32

    core_params = frozenset({"Lambda_re", "Lambda_im", "B", "log_step"})
    output_params = frozenset({"C", "C_rev"})

    @classmethod
    def check_options(cls, o, prefix=""):
        require(o.d_state % o.blocks == 0, prefix + "d_state",
                f"= {o.d_state} must be divisible by blocks = {o.blocks} ({prefix}blocks)")
        require(not (o.conj_sym and (o.d_state // o.blocks) % 2), prefix + "d_state",
                f"= {o.d_state} must be even (per block of {prefix}blocks = {o.blocks}) "
                f"with {prefix}conj_sym=True")
        require(o.dt_min <= o.dt_max, prefix + "dt_min",
                f"and {prefix}dt_max need 0 < dt_min <= dt_max, got {o.dt_min}, {o.dt_max}")

    @staticmethod
    def eigenvalues(params):
        return params["Lambda_re"] + 1j * params["Lambda_im"]

    @staticmethod
    def with_eigenvalues(params, Lambda):
        Lambda = jnp.broadcast_to(jnp.asarray(Lambda), params["Lambda_re"].shape)
        return type(params)({**params, "Lambda_re": Lambda.real.astype(params["Lambda_re"].dtype),
                             "Lambda_im": jnp.imag(Lambda).astype(params["Lambda_im"].dtype)})

    @staticmethod
    def step_sizes(params):
        return jnp.exp(params["log_step"])

    @staticmethod
    def with_step_sizes(params, step):
        log_step = jnp.log(jnp.broadcast_to(jnp.asarray(step), params["log_step"].shape))
        return type(params)({**params, "log_step": log_step.astype(params["log_step"].dtype)})

    def setup(self):
        self.options()  # checks every option (names the key and the allowed values)
        H, P = self.features, self.d_state
        Lambda0, V = _block_hippo_n(P, self.blocks, self.conj_sym)
        M = Lambda0.shape[0]
        pdt = self.param_dtype
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

        self.Lambda_re = self.param("Lambda_re", const(Lambda0.real), (M,), pdt)
        self.Lambda_im = self.param("Lambda_im", const(Lambda0.imag), (M,), pdt)
        self.B = self.param("B", B_init, (M, H, 2), pdt)
        self.C_params = {d: self.param("C" + d, C_init, (H, M, 2), pdt) for d in self.directions}
        self.log_step = self.param("log_step", log_step_uniform, (M,), self.dt_min, self.dt_max, pdt)
        self.D = self.param("D", nn.initializers.normal(1.0), (H,), pdt)

    @property
    def directions(self):
        return ("", "_rev") if self.bidirectional else ("",)

    def discrete(self):
        """Discretized ``(Lambda_bar (M,), B_bar (M, H))``, complex."""
        re = jnp.minimum(self.Lambda_re, -1e-4) if self.clip_eigs else self.Lambda_re
        Lambda_bar, B_factor = discretize(re + 1j * self.Lambda_im, jnp.exp(self.log_step),
                                          self.discretization)
        return Lambda_bar, B_factor[:, None] * (self.B[..., 0] + 1j * self.B[..., 1])

    def __call__(self, u):
        """Args: u: (batch, L, H) real. Returns y: (batch, L, H) real."""
        check_rank("u", u, (3,), "(batch, L, H)")
        check_same("u[..., :]", u.shape[-1:], "features", (self.features,), "feature count H")
        self.sow("intermediates", "input", u)
        Lambda_bar, B_bar = self.discrete()
        Bu = input_projection(u, B_bar)  # (batch, L, M) complex, from one real product
        scale = 2.0 if self.conj_sym else 1.0
        y = self.D * u
        for d in self.directions:
            C = self.C_params[d][..., 0] + 1j * self.C_params[d][..., 1]  # (H, M)
            if self.is_mutable_collection("intermediates"):
                K = mimo_kernel(Lambda_bar, B_bar, C, u.shape[1], conj_sym=self.conj_sym)
                self.sow("intermediates", "kernel" + d, K)
            run = lambda b: linear_recurrence(Lambda_bar, b, reverse=(d == "_rev"),
                                              method=self.scan_method)
            x = jax.vmap(run)(Bu)  # (batch, L, M)
            y = y + output_projection(x, C, scale)  # scale * Re(C x), one real product
        return y
