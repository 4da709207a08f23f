"""S4: H independent DPLR SISO SSMs (HiPPO-LegS NPLR init), convolution via the Cauchy kernel
and Woodbury identity, or the dense bilinear recurrence (recurrent and step mode)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssm_jax.kernels import causal_conv, log_step_uniform
from ssm_jax.kernels._checks import check_choice, check_rank, check_same
from ssm_jax.kernels.dplr import c_from_tilde, dplr_kernel, dplr_matrices, hippo_nplr
from ssm_jax.layers.base import SSMLayer, register_layer
from ssm_jax.layers.s4d import DIRECTIONS, _rows, _stacked, _unstacked
from ssm_jax.options import option, require

S4_MODES = ("conv", "recurrent")
_CORE = ("Lambda_re", "Lambda_im", "P_re", "P_im", "B_re", "B_im", "log_step")
_OUTPUT = ("C_re", "C_im")


@register_layer("s4")
class S4(SSMLayer):
    """Diagonal-plus-low-rank state space layer (S4) over a batch of sequences.

    Parameters (real arrays, per direction; suffix ``_rev`` for the backward one):
    ``Lambda_re, Lambda_im, P_re, P_im, B_re, B_im, C_re, C_im`` (H, M) with M = d_state / 2
    stored states (one of each conjugate pair, read out as 2 Re), ``log_step`` (H,), and ``D``
    (H,). ``C`` is S4's ``Ct = C (I - Abar^L)`` for the training length L
    (:mod:`ssm_jax.kernels.dplr`), so the convolution kernel never needs a matrix power; the
    recurrent and step modes convert it back with ``length`` (the L it refers to).

    Intermediates: ``input`` (batch, L, H) and ``kernel`` (H, L) (plus ``kernel_rev``).
    Protocol: eigenvalues are the diagonal part ``Lambda`` ``(H, M)`` (``(2, H, M)`` when
    bidirectional), step sizes ``(H,)`` (``(2, H)``).
    """

    features: int  # H
    d_state: int = option(64, "state size N per channel (M = N/2 stored states)", positive=True)
    dt_min: float = option(1e-3, "smallest initial step size", positive=True)
    dt_max: float = option(1e-1, "largest initial step size", positive=True)
    mode: str = option("conv", "convolution (Cauchy + Woodbury) or dense recurrence",
                       choices=S4_MODES)
    bidirectional: bool = option(False, "add a backward-in-time SSM")
    param_dtype: jnp.dtype = jnp.float32

    core_params = frozenset(n + d for n in _CORE for d in DIRECTIONS)
    output_params = frozenset(n + d for n in _OUTPUT for d in DIRECTIONS)

    @classmethod
    def check_options(cls, o, prefix=""):
        require(o.d_state % 2 == 0, prefix + "d_state", f"= {o.d_state} must be even (conjugate pairs)")
        require(o.dt_min <= o.dt_max, prefix + "dt_min",
                f"and {prefix}dt_max need 0 < dt_min <= dt_max, got {o.dt_min}, {o.dt_max}")

    eigenvalues = staticmethod(lambda params: _complex(params, "Lambda"))
    step_sizes = staticmethod(lambda params: jnp.exp(_stacked(params, ("log_step",))[0]))

    @staticmethod
    def with_eigenvalues(params, Lambda):
        shape = jnp.shape(_stacked(params, ("Lambda_re",))[0])
        Lambda = jnp.broadcast_to(jnp.asarray(Lambda), shape)
        return _unstacked(params, {"Lambda_re": Lambda.real, "Lambda_im": jnp.imag(Lambda)})

    @staticmethod
    def with_step_sizes(params, step):
        shape = jnp.shape(_stacked(params, ("log_step",))[0])
        return _unstacked(params, {"log_step": jnp.log(jnp.broadcast_to(jnp.asarray(step), shape))})

    def setup(self):
        self.options()
        H, M = self.features, self.d_state // 2
        Lambda0, P0, B0 = hippo_nplr(self.d_state)
        complex_normal = nn.initializers.normal(2 ** -0.5)  # Ct ~ CN(0, 1), as S4
        pdt = self.param_dtype
        params = {}
        for d in self.directions:
            params[d] = dict(
                Lambda_re=self.param("Lambda_re" + d, _rows(Lambda0.real), (H, M), pdt),
                Lambda_im=self.param("Lambda_im" + d, _rows(Lambda0.imag), (H, M), pdt),
                P_re=self.param("P_re" + d, _rows(P0.real), (H, M), pdt),
                P_im=self.param("P_im" + d, _rows(P0.imag), (H, M), pdt),
                B_re=self.param("B_re" + d, _rows(B0.real), (H, M), pdt),
                B_im=self.param("B_im" + d, _rows(B0.imag), (H, M), pdt),
                C_re=self.param("C_re" + d, complex_normal, (H, M), pdt),
                C_im=self.param("C_im" + d, complex_normal, (H, M), pdt),
                log_step=self.param("log_step" + d, log_step_uniform, (H,), self.dt_min,
                                    self.dt_max, pdt),
            )
        self.ssm_params = params
        self.D = self.param("D", nn.initializers.normal(1.0), (H,), pdt)

    @property
    def directions(self):
        return DIRECTIONS if self.bidirectional else DIRECTIONS[:1]

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

    def __call__(self, u, *, mode: str | None = None):
        """Args: u: (batch, L, H) real. Returns y: (batch, L, H) real."""
        check_rank("u", u, (3,), "(batch, L, H)")
        check_same("u[..., :]", u.shape[-1:], "features", (self.features,), "feature count H")
        mode = self.mode if mode is None else mode
        check_choice("S4 mode", mode, S4_MODES)
        self.sow("intermediates", "input", u)
        y = self._direction(u, "", mode)
        if self.bidirectional:
            y = y + self._direction(u[:, ::-1], "_rev", mode)[:, ::-1]
        return y + self.D * u

    def _direction(self, u, d: str, mode: str):
        L = u.shape[1]
        if mode == "conv" or self.is_mutable_collection("intermediates"):
            K = self.kernel(L, d)
            self.sow("intermediates", "kernel" + d, K)
        if mode == "conv":
            return jax.vmap(causal_conv, in_axes=(0, None))(u, K)
        Abar, Bbar, C = self.recurrence(L, d)

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


def _complex(params, name):
    re, im = _stacked(params, (name + "_re", name + "_im"))
    return re + 1j * im
