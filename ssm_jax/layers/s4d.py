"""S4D: H independent diagonal SISO SSMs, one per feature (convolution, recurrent or step mode)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssm_jax.kernels import (
    LAMBDA_INITS, causal_conv, discretize, init_Lambda, log_step_uniform, ssm_kernel,
    ssm_recurrence, ssm_step,
)
from ssm_jax.kernels._checks import check_choice, check_rank, check_same

S4D_MODES = ("conv", "recurrent")


def _rows(values):
    """Initializer that repeats a (n,) vector over H rows: shape (H, n)."""
    return lambda key, shape, dtype: jnp.broadcast_to(jnp.asarray(values, dtype), shape)


class S4D(nn.Module):
    """Diagonal state space layer (S4D) over a batch of sequences.

    Parameters (real arrays): ``Lambda_re, Lambda_im, B_re, B_im, C_re, C_im`` (H, n),
    ``log_step`` (H,) and ``D`` (H,), with ``n = d_state // 2`` stored modes (one of each
    conjugate pair, read out as 2 Re) when ``conj_sym``, else ``n = d_state``. A bidirectional
    layer has a second set with suffix ``_rev`` for the backward direction.

    Intermediates (sown only when "intermediates" is mutable): ``input`` (B, L, H), the layer
    input, and ``kernel`` (H, L) (plus ``kernel_rev``), the kernel of the convolution; in
    recurrent mode it is computed only for this purpose.
    """

    features: int  # H
    d_state: int = 64  # N
    ssm_init: str = "legs"  # Lambda initialization: legs | lin | inv | real
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    discretization: str = "zoh"
    mode: str = "conv"
    scan_method: str = "auto"
    conj_sym: bool = True
    bidirectional: bool = False
    clip_eigs: bool = False  # use min(Re Lambda, -1e-4) in the forward pass
    param_dtype: jnp.dtype = jnp.float32

    def setup(self):
        check_choice("Lambda init", self.ssm_init, LAMBDA_INITS)
        check_choice("S4D mode", self.mode, S4D_MODES)
        if self.conj_sym and self.d_state % 2:
            raise ValueError(f"d_state must be even with conj_sym=True, got {self.d_state}")
        H, n = self.features, self.n_modes
        Lambda0 = init_Lambda(self.ssm_init, n)
        complex_normal = nn.initializers.normal(2 ** -0.5)  # C ~ CN(0, 1)
        dt = self.param_dtype
        params = {}
        for d in self.directions:
            params[d] = dict(
                Lambda_re=self.param("Lambda_re" + d, _rows(Lambda0.real), (H, n), dt),
                Lambda_im=self.param("Lambda_im" + d, _rows(Lambda0.imag), (H, n), dt),
                B_re=self.param("B_re" + d, nn.initializers.ones, (H, n), dt),
                B_im=self.param("B_im" + d, nn.initializers.zeros, (H, n), dt),
                C_re=self.param("C_re" + d, complex_normal, (H, n), dt),
                C_im=self.param("C_im" + d, complex_normal, (H, n), dt),
                log_step=self.param("log_step" + d, log_step_uniform, (H,), self.dt_min, self.dt_max, dt),
            )
        self.ssm_params = params
        self.D = self.param("D", nn.initializers.normal(1.0), (H,), self.param_dtype)

    @property
    def n_modes(self) -> int:
        return self.d_state // 2 if self.conj_sym else self.d_state

    @property
    def directions(self):
        return ("", "_rev") if self.bidirectional else ("",)

    def discrete(self, d: str = ""):
        """Discretized ``(Lambda_bar, B_bar, C)`` of direction ``d``, each (H, n) complex."""
        p = self.ssm_params[d]
        re = jnp.minimum(p["Lambda_re"], -1e-4) if self.clip_eigs else p["Lambda_re"]
        step = jnp.exp(p["log_step"])[:, None]
        Lambda_bar, B_factor = discretize(re + 1j * p["Lambda_im"], step, self.discretization)
        return Lambda_bar, B_factor * (p["B_re"] + 1j * p["B_im"]), p["C_re"] + 1j * p["C_im"]

    def __call__(self, u, *, mode: str | None = None):
        """Args: u: (B, L, H) real. Returns y: (B, L, H) real."""
        check_rank("u", u, (3,), "(batch, L, H)")
        check_same("u[..., :]", u.shape[-1:], "features", (self.features,), "feature count H")
        mode = self.mode if mode is None else mode
        check_choice("S4D mode", mode, S4D_MODES)
        self.sow("intermediates", "input", u)
        y = self._direction(u, "", mode)
        if self.bidirectional:
            y = y + self._direction(u[:, ::-1], "_rev", mode)[:, ::-1]
        return y + self.D * u

    def _direction(self, u, d: str, mode: str):
        L = u.shape[1]
        Lambda_bar, B_bar, C = self.discrete(d)
        if mode == "conv" or self.is_mutable_collection("intermediates"):
            K = ssm_kernel(Lambda_bar, B_bar, C, L, conj_sym=self.conj_sym)  # (H, L)
            self.sow("intermediates", "kernel" + d, K)
        if mode == "conv":
            return jax.vmap(causal_conv, in_axes=(0, None))(u, K)
        run = lambda x: ssm_recurrence(x, Lambda_bar, B_bar, C, conj_sym=self.conj_sym,
                                       method=self.scan_method)
        return jax.vmap(run)(u)

    def init_state(self, batch_size: int):
        """Zero state for :meth:`step`: (batch, H, n) complex64."""
        return jnp.zeros((batch_size, self.features, self.n_modes), jnp.complex64)

    def step(self, state, u_t):
        """One time step (causal layers only), for step-by-step inference.

        Args:
          state: (B, H, n) complex.
          u_t: (B, H) real input.

        Returns:
          (state, y_t): the new state and the output (B, H).
        """
        if self.bidirectional:
            raise ValueError("step mode needs a causal layer (bidirectional=False)")
        Lambda_bar, B_bar, C = self.discrete("")
        f = lambda h, x: ssm_step(h, x, Lambda_bar, B_bar, C, conj_sym=self.conj_sym)
        state, y = jax.vmap(f)(state, u_t)
        return state, y + self.D * u_t
