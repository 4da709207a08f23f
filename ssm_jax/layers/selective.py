"""Selective SSM layer: the paper form of Honarpisheh et al. (one shared step size per time
step, B_t = W_B u_t, C_t = W_C u_t, real diagonal A, no D) and a Mamba-style form (per-channel
step sizes from a low-rank projection, A = -exp(A_log), D skip)."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssm_jax.kernels import SCAN_METHODS, s4d_real
from ssm_jax.kernels.checks import check_rank, check_same
from ssm_jax.kernels.selective import BACKWARDS, selective_scan
from ssm_jax.layers.base import SSMLayer, register_layer
from ssm_jax.options import option, require

FORMS = ("paper", "mamba")


def paper_A_init(s_A: float):
    """The paper code's init of A (d, N): ``s_A - 10 U[0, 1)`` with column 0 set to ``s_A``, so
    that the spectral abscissa ``max A`` is exactly ``s_A``."""

    def init(key, shape, dtype=jnp.float32):
        A = s_A - 10.0 * jax.random.uniform(key, shape, dtype)
        return A.at[:, 0].set(s_A)

    return init


def inverse_softplus(x):
    """``log(exp(x) - 1)``, the value whose softplus is ``x > 0`` (stable for large x)."""
    x = jnp.asarray(x)
    return x + jnp.log(-jnp.expm1(-x))


def _dt_bias_init(dt_min: float, dt_max: float):
    """Mamba's step-size bias: ``inverse_softplus(dt)`` with dt log-uniform in [dt_min, dt_max]."""

    def init(key, shape, dtype=jnp.float32):
        r = jax.random.uniform(key, shape, dtype)
        dt = jnp.exp(r * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        return inverse_softplus(dt).astype(dtype)

    return init


@register_layer("selective")
class SelectiveSSM(SSMLayer):
    """Selective SSM over a batch of sequences: ``u (batch, L, d) -> y (batch, L, d)``.

    ``form="paper"`` (Honarpisheh et al., eqs. (2), (6), (7)), parameters named as the paper:
    ``A (d, N)`` real (unconstrained, trainable), ``W_B (N, d)``, ``W_C (N, d)``, ``q (d,)``,
    ``p (1,)``::

        Delta_t = softplus(p + q . u_t)             one scalar per step, shared by all channels
        x_t     = exp(Delta_t A) * x_{t-1} + Delta_t * outer(u_t, W_B u_t)       x_t: (d, N)
        y_t     = x_t (W_C u_t)                                                  y_t: (d,)

    Init as the paper's code: ``A = s_A - 10 U[0,1)`` with column 0 set to ``s_A`` (so
    ``max A = s_A`` exactly), every other weight N(0, 1).

    ``form="mamba"``: ``A = -exp(A_log)`` (S4D-Real init ``A_n = -(n + 1)``), ``W_x
    (R + 2N, d)`` giving ``(dt_low (R,), B_t (N,), C_t (N,))`` from ``u_t``, per-channel
    ``Delta_t = softplus(W_dt dt_low + dt_bias)`` with ``W_dt (d, R)`` and the inverse-softplus
    init of ``dt_bias (d,)`` (dt log-uniform in [dt_min, dt_max]), and a skip ``D (d,)``.
    The conv, gate and norm of a Mamba block are the surrounding block's job
    (``SequenceBlock``).

    The three input projections of each form are one real matrix product with the stacked
    weights (``[W_B; W_C; q]`` or ``W_x``), not three.

    Intermediates: ``input`` (batch, L, d). There is no LTI kernel, so none is sown.

    Protocol: ``eigenvalues`` are the (real) entries of A as complex ``(d, N)``;
    ``step_sizes`` are the input-free steps ``softplus(p)`` ``(1,)`` (paper) or
    ``softplus(dt_bias)`` ``(d,)`` (mamba). The output map is input-dependent and shared by
    all channels, so the per-channel init scaling rule of paper 1 has nothing to rescale
    (``output_params`` is empty).
    """

    features: int  # d
    d_state: int = option(4, "state size N per channel", positive=True)
    form: str = option("paper", "paper (shared scalar Delta, no D) or mamba", choices=FORMS)
    s_A: float = option(0.0, "paper form: spectral abscissa max(A) at init")
    scan_method: str = option("auto", "scan backend", choices=SCAN_METHODS)
    chunk_size: int = option(None, "time steps per rematerialized chunk (0: no chunks; None: "
                             "the kernel's choice from L, d, N)", kind=int, minimum=0,
                             nullable=True)
    backward: str = option("auto", "gradient of the scan: hand-written adjoint recurrence, JAX "
                           "reverse mode chunk by chunk (both reverse mode only), JAX autodiff "
                           "or the kernel's choice", choices=BACKWARDS)
    dt_rank: int = option(0, "mamba form: rank R of the step-size projection (0: ceil(d/16))",
                          minimum=0)
    dt_min: float = option(1e-3, "mamba form: smallest initial step size", positive=True)
    dt_max: float = option(1e-1, "mamba form: largest initial step size", positive=True)
    param_dtype: jnp.dtype = jnp.float32

    core_params = frozenset({"A", "W_B", "q", "p", "A_log", "W_dt", "dt_bias"})
    output_params = frozenset()

    @classmethod
    def check_options(cls, o, prefix=""):
        require(o.dt_min <= o.dt_max, prefix + "dt_min",
                f"and {prefix}dt_max need 0 < dt_min <= dt_max, got {o.dt_min}, {o.dt_max}")
        require(math.isfinite(o.s_A) and abs(o.s_A) <= 50, prefix + "s_A",
                f"must be in [-50, 50] (beyond, exp(s_A) of the bound terms over- or "
                f"underflows float32; the paper sweeps -0.1..0.1), got {o.s_A}")

    # ------------------------------------------------------------------ protocol readers
    @staticmethod
    def eigenvalues(params):
        A = params["A"] if "A" in params else -jnp.exp(params["A_log"])
        return A.astype(jnp.result_type(A.dtype, jnp.complex64))

    @staticmethod
    def with_eigenvalues(params, Lambda):
        """Writes ``Re(Lambda)`` (A is real) broadcast to ``(d, N)``."""
        out = dict(params)
        if "A" in params:
            out["A"] = jnp.broadcast_to(jnp.real(Lambda), params["A"].shape).astype(params["A"].dtype)
        else:
            re = jnp.broadcast_to(jnp.real(Lambda), params["A_log"].shape)
            out["A_log"] = jnp.log(-re).astype(params["A_log"].dtype)
        return type(params)(out)

    @staticmethod
    def step_sizes(params):
        return jax.nn.softplus(params["p"] if "p" in params else params["dt_bias"])

    @staticmethod
    def with_step_sizes(params, step):
        name = "p" if "p" in params else "dt_bias"
        out = dict(params)
        value = inverse_softplus(jnp.broadcast_to(jnp.asarray(step), params[name].shape))
        out[name] = value.astype(params[name].dtype)
        return type(params)(out)

    @staticmethod
    def spectral_abscissa(params):
        """``max_i Re lambda_i(A)`` of the layer's (diagonal) A: scalar."""
        return jnp.max(jnp.real(SelectiveSSM.eigenvalues(params)))

    @staticmethod
    def with_spectral_abscissa(params, s_A):
        """Shift A so that ``max A = s_A`` (paper form; mamba: its A is negative by
        construction, so ``s_A`` must be negative)."""
        A = jnp.real(SelectiveSSM.eigenvalues(params))
        return SelectiveSSM.with_eigenvalues(params, A - jnp.max(A) + s_A)

    # ------------------------------------------------------------------ forward
    @property
    def rank(self) -> int:
        return self.dt_rank or math.ceil(self.features / 16)

    def setup(self):
        self.options()  # checks every option (names the key and the allowed values)
        d, N, pdt = self.features, self.d_state, self.param_dtype
        normal = nn.initializers.normal(1.0)
        if self.form == "paper":
            self.A = self.param("A", paper_A_init(self.s_A), (d, N), pdt)
            self.W_B = self.param("W_B", normal, (N, d), pdt)
            self.W_C = self.param("W_C", normal, (N, d), pdt)
            self.q = self.param("q", normal, (d,), pdt)
            self.p = self.param("p", normal, (1,), pdt)
        else:
            R = self.rank
            A0 = -jnp.real(s4d_real(N))  # (N,) = 1..N
            self.A_log = self.param("A_log", lambda k, s, t: jnp.broadcast_to(jnp.log(A0), s).astype(t),
                                    (d, N), pdt)
            self.W_x = self.param("W_x", nn.initializers.lecun_normal(), (R + 2 * N, d), pdt)
            self.W_dt = self.param("W_dt", nn.initializers.normal(R ** -0.5), (d, R), pdt)
            self.dt_bias = self.param("dt_bias", _dt_bias_init(self.dt_min, self.dt_max), (d,), pdt)
            self.D = self.param("D", nn.initializers.ones, (d,), pdt)

    def __call__(self, u):
        """Args: u: (batch, L, d) real. Returns y: (batch, L, d) real."""
        check_rank("u", u, (3,), "(batch, L, d)")
        check_same("u[..., :]", u.shape[-1:], "features", (self.features,), "feature count d")
        self.sow("intermediates", "input", u)
        N = self.d_state
        if self.form == "paper":
            W = jnp.concatenate([self.W_B, self.W_C, self.q[None, :]], axis=0)  # (2N+1, d)
            z = jnp.einsum("bld,kd->blk", u, W.astype(u.dtype))
            B, C = z[..., :N], z[..., N:2 * N]
            delta = jax.nn.softplus(self.p + z[..., 2 * N:])  # (batch, L, 1): shared by channels
            A = self.A
        else:
            R = self.rank
            z = jnp.einsum("bld,kd->blk", u, self.W_x.astype(u.dtype))
            dt_low, B, C = z[..., :R], z[..., R:R + N], z[..., R + N:]
            delta = jax.nn.softplus(jnp.einsum("blr,dr->bld", dt_low, self.W_dt) + self.dt_bias)
            A = -jnp.exp(self.A_log)
        scan = lambda u_, d_, B_, C_: selective_scan(u_, d_, A, B_, C_, method=self.scan_method,
                                                     chunk_size=self.chunk_size,
                                                     backward=self.backward)
        y = jax.vmap(scan)(u, delta, B, C)
        if self.form == "mamba":
            y = y + self.D * u
        return y.astype(u.dtype)
