"""S4: H independent DPLR SISO SSMs (HiPPO-LegS NPLR init), convolution via the Cauchy kernel
and Woodbury identity, or the dense bilinear recurrence (recurrent and step mode)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ssm_jax.kernels.dplr import c_from_tilde, dplr_kernel, dplr_matrices, hippo_nplr
from ssm_jax.layers.base import register_layer
from ssm_jax.layers.s4d import S4D, SISOLayer, per_direction, rows_init
from ssm_jax.options import option, option_of, require

S4_MODES = ("conv", "recurrent")
_CORE = ("Lambda_re", "Lambda_im", "P_re", "P_im", "B_re", "B_im", "log_step")
_OUTPUT = ("C_re", "C_im")


@register_layer("s4")
class S4(SISOLayer):
    """Diagonal-plus-low-rank state space layer (S4) over a batch of sequences.

    Parameters (real arrays, per direction; suffix ``_rev`` for the backward one):
    ``Lambda_re, Lambda_im, P_re, P_im, B_re, B_im, C_re, C_im`` (H, M) with M = d_state / 2
    stored states (one of each conjugate pair, read out as 2 Re), ``log_step`` (H,), and ``D``
    (H,). ``C`` is S4's ``Ct = C (I - Abar^L)`` for the training length L
    (:mod:`ssm_jax.kernels.dplr`), so the convolution kernel never needs a matrix power; the
    recurrent and step modes convert it back with ``length`` (the L it refers to).

    The call path (modes, directions, sown intermediates) and the protocol's eigenvalue and
    step-size functions are :class:`~ssm_jax.layers.s4d.SISOLayer`'s, shared with S4D; S4
    supplies its kernel and its dense recurrence.

    Intermediates: ``input`` (batch, L, H) and ``kernel`` (H, L) (plus ``kernel_rev``).
    Protocol: eigenvalues are the diagonal part ``Lambda`` ``(H, M)`` (``(2, H, M)`` when
    bidirectional), step sizes ``(H,)`` (``(2, H)``).
    """

    features: int  # H
    d_state: int = option(64, "state size N per channel (M = N/2 stored states)", positive=True)
    dt_min: float = option_of(S4D, "dt_min")
    dt_max: float = option_of(S4D, "dt_max")
    mode: str = option("conv", "convolution (Cauchy + Woodbury) or dense recurrence",
                       choices=S4_MODES)
    bidirectional: bool = option_of(S4D, "bidirectional")
    param_dtype: jnp.dtype = jnp.float32

    core_params = per_direction(_CORE)
    output_params = per_direction(_OUTPUT)

    @classmethod
    def check_options(cls, o, prefix=""):
        require(o.d_state % 2 == 0, prefix + "d_state", f"= {o.d_state} must be even (conjugate pairs)")
        super().check_options(o, prefix)

    def setup(self):
        self.options()
        Lambda0, P0, B0 = hippo_nplr(self.d_state)  # M = d_state / 2; Ct ~ CN(0, 1), as S4
        self.init_params(Lambda0, dict(P_re=rows_init(P0.real), P_im=rows_init(P0.imag),
                                       B_re=rows_init(B0.real), B_im=rows_init(B0.imag)))

    def dplr(self, d: str = ""):
        """``(Lambda, P, B, Ct, step)`` of direction ``d``: (H, M) complex and (H,)."""
        p = self.ssm_params[d]
        c = lambda n: p[n + "_re"] + 1j * p[n + "_im"]
        return c("Lambda"), c("P"), c("B"), c("C"), jnp.exp(p["log_step"])

    def kernel(self, length: int, d: str = ""):
        """(H, L) real convolution kernel of direction ``d`` (``Ct`` refers to this L)."""
        return dplr_kernel(*self.dplr(d), length, c_tilde_given=True)

    def recurrence(self, length: int, d: str = ""):
        """Dense ``(Abar (H, M, M), Bbar (H, M), C (H, M))`` with ``C`` from ``Ct`` for L."""
        Lambda, P, B, Ct, step = self.dplr(d)
        Abar, Bbar = dplr_matrices(Lambda, P, B, step)
        return Abar, Bbar, c_from_tilde(Ct, Abar, length)

    def recurrent(self, u, d: str = ""):
        """(batch, L, H) output of direction ``d`` by the dense recurrence."""
        Abar, Bbar, C = self.recurrence(u.shape[1], d)

        def step(x, u_t):  # x: (batch, H, M), u_t: (batch, H)
            x = jnp.einsum("hnm,bhm->bhn", Abar, x) + Bbar * u_t[..., None]
            return x, 2 * jnp.einsum("hn,bhn->bh", C, x).real

        x0 = jnp.zeros(u.shape[:1] + Bbar.shape, Bbar.dtype)
        _, y = jax.lax.scan(step, x0, jnp.swapaxes(u, 0, 1))
        return jnp.swapaxes(y, 0, 1).astype(u.dtype)

    def init_state(self, batch_size: int):
        """Zero state for :meth:`step`: (batch, H, M) complex64."""
        return jnp.zeros((batch_size, self.features, self.d_state // 2), jnp.complex64)

    def step(self, state, u_t, *, length: int):
        """One time step of the causal layer (``length``: the L that ``Ct`` refers to).

        Args:
          state: (batch, H, M) complex.
          u_t: (batch, H) real.

        Returns:
          (state, y_t (batch, H)).
        """
        if self.bidirectional:
            raise ValueError("step mode needs a causal layer (bidirectional=False)")
        Abar, Bbar, C = self.recurrence(length)
        state = jnp.einsum("hnm,bhm->bhn", Abar, state.astype(Abar.dtype)) + Bbar * u_t[..., None]
        return state, 2 * jnp.einsum("hn,bhn->bh", C, state).real + self.D * u_t

