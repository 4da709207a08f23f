"""S4D: H independent diagonal SISO SSMs, one per feature (convolution, recurrent or step mode)."""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssm_jax.kernels import (
    DISCRETIZATIONS, LAMBDA_INITS, SCAN_METHODS, causal_conv, discretize, init_Lambda,
    log_step_uniform, ssm_kernel, ssm_recurrence, ssm_step,
)
from ssm_jax.kernels.checks import check_choice, check_rank, check_same
from ssm_jax.layers.base import SSMLayer, register_layer
from ssm_jax.options import option, require

S4D_MODES = ("conv", "recurrent")
DIRECTIONS = ("", "_rev")  # parameter-name suffixes of the forward and backward directions
_CORE = ("Lambda_re", "Lambda_im", "B_re", "B_im", "log_step")
_OUTPUT = ("C_re", "C_im")


def per_direction(names) -> frozenset:
    """The parameter names ``names`` of both directions (``Lambda_re``, ``Lambda_re_rev``, ...)."""
    return frozenset(n + d for n in names for d in DIRECTIONS)


def rows_init(values):
    """Initializer that repeats a (M,) vector over H rows: shape (H, M)."""
    return lambda key, shape, dtype: jnp.broadcast_to(jnp.asarray(values, dtype), shape)


def stack_directions(params, names):
    """``params[name]`` of every direction present, stacked on a leading axis if bidirectional."""
    present = [d for d in DIRECTIONS if names[0] + d in params]
    parts = [tuple(params[n + d] for n in names) for d in present]
    if len(parts) == 1:
        return parts[0]
    return tuple(jnp.stack(p) for p in zip(*parts))


def unstack_directions(params, values: dict):
    """Write ``{name: array}`` back, splitting the leading direction axis if bidirectional."""
    out = dict(params)
    bidirectional = "Lambda_re_rev" in params
    for name, value in values.items():
        if bidirectional:
            for i, d in enumerate(DIRECTIONS):
                out[name + d] = value[i].astype(params[name + d].dtype)
        else:
            out[name] = value.astype(params[name].dtype)
    return type(params)(out)


class SISOLayer(SSMLayer):
    """What S4D and S4 share: H independent SISO SSMs per direction (parameter names suffixed
    by :data:`DIRECTIONS`; ``Lambda_re, Lambda_im`` (H, M) eigenvalues and ``log_step`` (H,)
    step sizes), run as a convolution with their (H, L) kernel or as a recurrence, plus the
    skip ``D * u``.

    A subclass has the fields ``features`` and ``bidirectional`` and the parameter ``D``, and
    defines ``kernel(length, d)`` ((H, L) real kernel of direction ``d``) and
    ``recurrent(u, d)`` ((batch, L, H) output of direction ``d`` by the recurrence).
    """

    modes: ClassVar[tuple] = ("conv", "recurrent")

    @classmethod
    def check_options(cls, o, prefix=""):
        require(o.dt_min <= o.dt_max, prefix + "dt_min",
                f"and {prefix}dt_max need 0 < dt_min <= dt_max, got {o.dt_min}, {o.dt_max}")

    @staticmethod
    def eigenvalues(params):
        re, im = stack_directions(params, ("Lambda_re", "Lambda_im"))
        return re + 1j * im

    @staticmethod
    def with_eigenvalues(params, Lambda):
        shape = jnp.shape(stack_directions(params, ("Lambda_re",))[0])
        Lambda = jnp.broadcast_to(jnp.asarray(Lambda), shape)
        return unstack_directions(params, {"Lambda_re": Lambda.real, "Lambda_im": jnp.imag(Lambda)})

    @staticmethod
    def step_sizes(params):
        return jnp.exp(stack_directions(params, ("log_step",))[0])

    @staticmethod
    def with_step_sizes(params, step):
        shape = jnp.shape(stack_directions(params, ("log_step",))[0])
        return unstack_directions(params, {"log_step": jnp.log(jnp.broadcast_to(jnp.asarray(step), shape))})

    @property
    def directions(self):
        return DIRECTIONS if self.bidirectional else DIRECTIONS[:1]

    def init_params(self, Lambda0, inits: dict) -> None:
        """Create the parameters (in setup): per direction ``Lambda_re, Lambda_im`` (rows of the
        (M,) eigenvalues ``Lambda0``), then ``inits`` (``{name: initializer}`` of (H, M)
        arrays, in order), ``C_re, C_im`` (C ~ CN(0, 1)) and ``log_step`` (log-uniform in
        [dt_min, dt_max]); then ``D`` ~ N(0, 1). Sets ``ssm_params`` (``{direction: {name:
        array}}``, suffix-free names) and ``D``."""
        H, M, pdt = self.features, len(Lambda0), self.param_dtype
        complex_normal = nn.initializers.normal(2 ** -0.5)
        params = {}
        for d in self.directions:
            p = dict(Lambda_re=self.param("Lambda_re" + d, rows_init(Lambda0.real), (H, M), pdt),
                     Lambda_im=self.param("Lambda_im" + d, rows_init(Lambda0.imag), (H, M), pdt))
            for name, init in inits.items():
                p[name] = self.param(name + d, init, (H, M), pdt)
            p["C_re"] = self.param("C_re" + d, complex_normal, (H, M), pdt)
            p["C_im"] = self.param("C_im" + d, complex_normal, (H, M), pdt)
            p["log_step"] = self.param("log_step" + d, log_step_uniform, (H,), self.dt_min,
                                       self.dt_max, pdt)
            params[d] = p
        self.ssm_params = params
        self.D = self.param("D", nn.initializers.normal(1.0), (H,), pdt)

    def __call__(self, u, *, mode: str | None = None):
        """Args: u: (batch, L, H) real. Returns y: (batch, L, H) real."""
        check_rank("u", u, (3,), "(batch, L, H)")
        check_same("u[..., :]", u.shape[-1:], "features", (self.features,), "feature count H")
        mode = self.mode if mode is None else mode
        check_choice(f"{type(self).__name__} mode", mode, self.modes)
        self.sow("intermediates", "input", u)
        y = self._direction(u, "", mode)
        if self.bidirectional:
            y = y + self._direction(u[:, ::-1], "_rev", mode)[:, ::-1]
        return y + self.D * u

    def _direction(self, u, d: str, mode: str):
        if mode == "conv" or self.is_mutable_collection("intermediates"):
            K = self.kernel(u.shape[1], d)  # (H, L)
            self.sow("intermediates", "kernel" + d, K)
        if mode == "conv":
            return jax.vmap(causal_conv, in_axes=(0, None))(u, K)
        return self.recurrent(u, d)


@register_layer("s4d")
class S4D(SISOLayer):
    """Diagonal state space layer (S4D) over a batch of sequences.

    Parameters (real arrays): ``Lambda_re, Lambda_im, B_re, B_im, C_re, C_im`` (H, M),
    ``log_step`` (H,) and ``D`` (H,), with ``M = d_state // 2`` stored modes (one of each
    conjugate pair, read out as 2 Re) when ``conj_sym``, else ``M = d_state``. A bidirectional
    layer has a second set with suffix ``_rev`` for the backward direction.

    Intermediates (sown only when "intermediates" is mutable): ``input`` (batch, L, H), the
    layer input, and ``kernel`` (H, L) (plus ``kernel_rev``), the kernel of the convolution; in
    recurrent mode it is computed only for this purpose.

    Protocol: eigenvalues ``(H, M)`` complex and step sizes ``(H,)``, stacked over the
    directions as ``(2, H, M)`` / ``(2, H)`` when bidirectional.
    """

    features: int  # H
    d_state: int = option(64, "state size N per channel (stored modes M = N/2 with conj_sym)",
                          positive=True)
    ssm_init: str = option("legs", "eigenvalue initialization", choices=LAMBDA_INITS)
    dt_min: float = option(1e-3, "smallest initial step size", positive=True)
    dt_max: float = option(1e-1, "largest initial step size", positive=True)
    discretization: str = option("zoh", "discretization method", choices=DISCRETIZATIONS)
    mode: str = option("conv", "convolution (FFT) or recurrence (scan)", choices=S4D_MODES)
    scan_method: str = option("auto", "scan backend of the recurrent mode", choices=SCAN_METHODS)
    conj_sym: bool = option(True, "store one eigenvalue of each conjugate pair (read out 2 Re)")
    bidirectional: bool = option(False, "add a backward-in-time SSM")
    clip_eigs: bool = option(False, "use min(Re Lambda, -1e-4) in the forward pass")
    param_dtype: jnp.dtype = jnp.float32

    core_params = per_direction(_CORE)
    output_params = per_direction(_OUTPUT)

    @classmethod
    def check_options(cls, o, prefix=""):
        require(not (o.conj_sym and o.d_state % 2), prefix + "d_state",
                f"= {o.d_state} must be even with {prefix}conj_sym=True")
        super().check_options(o, prefix)

    def setup(self):
        self.options()  # checks every option (names the key and the allowed values)
        self.init_params(init_Lambda(self.ssm_init, self.n_modes),
                         dict(B_re=nn.initializers.ones, B_im=nn.initializers.zeros))

    @property
    def n_modes(self) -> int:
        """M, the stored (complex) modes per channel."""
        return self.d_state // 2 if self.conj_sym else self.d_state

    def discrete(self, d: str = ""):
        """Discretized ``(Lambda_bar, B_bar, C)`` of direction ``d``, each (H, M) complex."""
        p = self.ssm_params[d]
        re = jnp.minimum(p["Lambda_re"], -1e-4) if self.clip_eigs else p["Lambda_re"]
        step = jnp.exp(p["log_step"])[:, None]
        Lambda_bar, B_factor = discretize(re + 1j * p["Lambda_im"], step, self.discretization)
        return Lambda_bar, B_factor * (p["B_re"] + 1j * p["B_im"]), p["C_re"] + 1j * p["C_im"]

    def kernel(self, length: int, d: str = ""):
        """(H, L) real convolution kernel of direction ``d``."""
        return ssm_kernel(*self.discrete(d), length, conj_sym=self.conj_sym)

    def recurrent(self, u, d: str = ""):
        """(batch, L, H) output of direction ``d`` by the recurrence (``scan_method``)."""
        Lambda_bar, B_bar, C = self.discrete(d)
        run = lambda x: ssm_recurrence(x, Lambda_bar, B_bar, C, conj_sym=self.conj_sym,
                                       method=self.scan_method)
        return jax.vmap(run)(u)

    def init_state(self, batch_size: int):
        """Zero state for :meth:`step`: (batch, H, M) complex64."""
        return jnp.zeros((batch_size, self.features, self.n_modes), jnp.complex64)

    def step(self, state, u_t):
        """One time step (causal layers only), for step-by-step inference.

        Args:
          state: (batch, H, M) complex.
          u_t: (batch, H) real input.

        Returns:
          (state, y_t): the new state and the output (batch, H).
        """
        if self.bidirectional:
            raise ValueError("step mode needs a causal layer (bidirectional=False)")
        Lambda_bar, B_bar, C = self.discrete("")
        f = lambda h, x: ssm_step(h, x, Lambda_bar, B_bar, C, conj_sym=self.conj_sym)
        state, y = jax.vmap(f)(state, u_t)
        return state, y + self.D * u_t
