"""Paper 2's initialization: timescale from the input autocorrelation, real parts (zero
allowed), imaginary-part families, and the training-time handling of Re <= 0.

Everything goes through the layer protocol (:mod:`ssm_jax.layers.base`):
``eigenvalues / with_eigenvalues / step_sizes / with_step_sizes`` of each layer's parameter
dict, so it applies to any registered layer (S4D, S5, the selective layer, a new one) with no
per-layer code here.

The ``init`` config section (:class:`InitOptions`):

* ``timescale``: ``"log_uniform"`` keeps the layer's own init (log-uniform in
  ``[dt_min, dt_max]``); ``"autocorrelation"`` sets every step size of a layer to
  ``kappa / sqrt(L lambda_max(R))``, ``R`` the autocorrelation of that layer's own input on
  the init batch (:func:`autocorrelation_init`: layer by layer from the first, like paper 1's
  ``rescale_init``, since a layer's input depends on the layers before it).
* ``imag``: imaginary-part family: ``"layer"`` (keep), ``"lin"`` (S4D-Lin, ``pi n``), ``"inv"``
  (S4D-Inv, ``(N/pi)(N/(2n+1) - 1)``), ``"legs"`` (HiPPO-N / S4D-LegS), ``"real"`` (S4D-Real:
  ``Lambda_n = -(n+1)``, no imaginary part), ``"dft"`` (``Delta omega_n = 2 pi n / L``: the
  DFT grid of the layer's own Delta and the init batch's L; with Re = 0 and white input the
  features are orthogonal), ``"clustered"`` (``omega_n = cluster_scale * pi n``: closely spaced
  frequencies, the ill-conditioned case).
* ``real_part``: None (the family's: -1/2, or S4D-Real's -(n+1)), or a value ``<= 0`` given to
  every mode (0 = undamped modes, memory over the whole window).
* ``real_param``: how training treats Re (see below).

**Re <= 0 during training (the choice).** Re is kept as a plain parameter and, after every
optimizer step, *projected*: ``"clip"`` (the default for Re = 0; projected gradient descent:
``Re <- min(Re, 0)``), or ``"frozen"`` (``Re <- its value before the step``, so it stays at
its init); ``"free"`` does nothing (the S4D default). Projection was chosen over
``Re = -softplus(r)`` because it represents Re = 0 exactly (softplus never reaches 0, and
``r ~ -10`` gives a decay of 4.5e-5 and tiny gradients), needs no change of how layers store
their eigenvalues, and works through the protocol for any layer. It is applied by
:func:`real_part_projection` inside the jitted train step.

**Pure-accumulator guard.** With Re = 0 a mode is a pure accumulator
(``|Lambda_bar| = 1``); if Re then drifts above 0, ``|Lambda_bar|^L = exp(Delta Re L)`` grows
without bound and a float32 state overflows to inf/NaN (what users of Mamba-style models
report). So ``real_part = 0`` with ``real_param = "free"`` is refused at config time, and
:func:`apply_init` checks that every layer stores the requested eigenvalues exactly and finitely
(a layer with ``A = -exp(A_log)`` cannot store Re = 0, and is named in the error).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ssm_jax.bound.autocorrelation import autocorrelation_timescale
from ssm_jax.bound.collect import layer_sort_key
from ssm_jax.kernels.init import hippo_n, s4d_inv
from ssm_jax.layers import find_layers, get_params, update_params
from ssm_jax.options import OptionError, option, require

TIMESCALES = ("log_uniform", "autocorrelation")
IMAG_FAMILIES = ("layer", "lin", "inv", "legs", "real", "dft", "clustered")
REAL_PARAMS = ("free", "clip", "frozen")


@dataclasses.dataclass(frozen=True)
class InitOptions:
    """The validated ``init`` section (paper 2's initialization; defaults change nothing)."""

    timescale: str = option("log_uniform", "step sizes: the layer's log-uniform init, or "
                            "kappa / sqrt(L lambda_max) of each layer's input autocorrelation",
                            choices=TIMESCALES)
    kappa: float = option(1.0, "constant of the autocorrelation timescale", positive=True)
    per_channel: bool = option(False, "one autocorrelation timescale per channel (layers with a "
                               "step size per channel); else channels pooled")
    power_iters: int = option(200, "power iterations for lambda_max", positive=True)
    imag: str = option("layer", "imaginary-part family of the eigenvalues ('layer' = keep)",
                       choices=IMAG_FAMILIES)
    cluster_scale: float = option(0.1, "imag='clustered': omega_n = cluster_scale * pi * n",
                                  positive=True)
    real_part: float = option(None, "real part of every eigenvalue (<= 0; None = the family's)",
                              kind=float, maximum=0.0, nullable=True)
    real_param: str = option("free", "training-time Re: 'clip' projects Re <= 0 after each "
                             "step, 'frozen' keeps it at its init, 'free' leaves it",
                             choices=REAL_PARAMS)

    def check(self, prefix: str = "") -> None:
        require(not (self.real_part == 0.0 and self.real_param == "free"),
                prefix + "real_part",
                f"= 0 (pure accumulators) needs {prefix}real_param 'clip' or 'frozen': a free "
                "real part can drift above 0 and the state then overflows")
        require(not (self.imag == "real" and self.real_part is not None), prefix + "real_part",
                f"cannot be set with {prefix}imag='real' (S4D-Real's distinct real parts "
                "-(n+1) are its only parameters)")

    @property
    def active(self) -> bool:
        """Whether :func:`apply_init` changes anything."""
        return (self.timescale != "log_uniform" or self.imag != "layer"
                or self.real_part is not None)


def init_options(values=None, prefix: str = "init.") -> InitOptions:
    """:class:`InitOptions` from a mapping (missing keys take the defaults), checked."""
    from ssm_jax import options as opt

    return opt.parse(InitOptions, values, prefix)


# ------------------------------------------------------------------------- eigenvalues


def align_steps(step, shape):
    """Step sizes broadcast to the eigenvalues' ``shape``: a step array whose shape is a prefix
    of ``shape`` (one step per row, e.g. S4D's (H,) against (H, M)) gets trailing axes; one of
    the same shape (S5's (M,)) is used as is."""
    step = jnp.asarray(step)
    shape = tuple(shape)
    if step.shape == shape or step.ndim == 0:
        return jnp.broadcast_to(step, shape)
    if shape[:step.ndim] == step.shape:
        return jnp.broadcast_to(step.reshape(step.shape + (1,) * (len(shape) - step.ndim)), shape)
    raise ValueError(f"step sizes of shape {step.shape} do not match eigenvalues of shape {shape}")


def family_eigenvalues(family: str, M: int, *, step=None, length=None, cluster_scale=0.1):
    """Eigenvalues of one imaginary-part family with its own real parts.

    Args:
      family: one of :data:`IMAG_FAMILIES` except "layer".
      M: stored modes.
      step: (...,) step sizes broadcastable to ``(..., M)`` (only for "dft").
      length: L (only for "dft").
      cluster_scale: spacing factor of "clustered".

    Returns:
      (M,) complex128 (``(..., M)`` for "dft"): real part -1/2 (S4D-Real: -(n+1)).
    """
    n = np.arange(M)
    if family == "lin":
        return -0.5 + 1j * np.pi * n
    if family == "inv":
        return s4d_inv(M)
    if family == "legs":
        return hippo_n(2 * M, conj_sym=True)[0]
    if family == "real":
        return -(n + 1.0) + 0j
    if family == "clustered":
        return -0.5 + 1j * cluster_scale * np.pi * n
    if family == "dft":
        if step is None or length is None:
            raise ValueError("imag='dft' needs the step sizes and the length L")
        omega = 2 * jnp.pi * jnp.asarray(n) / (length * jnp.asarray(step)[..., None])
        return -0.5 + 1j * omega
    raise ValueError(f"unknown imaginary-part family {family!r}; valid names: "
                     f"{', '.join(map(repr, IMAG_FAMILIES[1:]))}")


def new_eigenvalues(Lambda, step, length: int, opts: InitOptions):
    """The eigenvalues of one layer after the ``init`` section.

    Args:
      Lambda: (..., M) complex, the layer's eigenvalues (protocol shape).
      step: the layer's step sizes (protocol shape: a prefix of Lambda's or the same).
      length: L of the init batch (for "dft").

    Returns:
      (..., M) complex.
    """
    Lambda = jnp.asarray(Lambda)
    shape, M = Lambda.shape, Lambda.shape[-1]
    if opts.imag == "layer":
        out = Lambda
    elif opts.imag == "dft":
        steps = align_steps(step, shape)  # one Delta per mode: omega = 2 pi n / (L Delta)
        n = jnp.arange(M)
        out = -0.5 + 1j * (2 * jnp.pi * n / (length * steps))
    else:
        out = jnp.broadcast_to(jnp.asarray(family_eigenvalues(opts.imag, M,
                                                              cluster_scale=opts.cluster_scale)),
                               shape)
    if opts.real_part is not None:
        out = opts.real_part + 1j * jnp.imag(out)
    return out


# --------------------------------------------------------------------------- the rules


def _clean(variables):
    return type(variables)({k: v for k, v in variables.items() if k != "intermediates"})


def _sown_inputs(intermediates) -> dict:
    """``{layer name: input}`` of every module that sowed ``input`` (with or without a
    ``kernel``: a selective layer has no fixed kernel); ``name[j]`` for repeated applications."""
    from collections.abc import Mapping

    found = {}

    def walk(node, path):
        if "input" in node:
            inputs = node["input"] if isinstance(node["input"], (tuple, list)) else (node["input"],)
            name = "/".join(path)
            for j, u in enumerate(inputs):
                found[name if len(inputs) == 1 else f"{name}[{j}]"] = u
        for key, child in node.items():
            if isinstance(child, Mapping):
                walk(child, path + (key,))

    walk(intermediates, ())
    return found


@functools.partial(jax.jit, static_argnames=("model",))
def _layer_inputs(model, variables, x, lengths):
    """``{layer name: input (batch, L, H)}`` from one evaluation-mode forward pass."""
    _, state = model.apply(variables, x, lengths, train=False, mutable=["intermediates"])
    return _sown_inputs(state["intermediates"])


def _layer_order(model, variables, x, lengths):
    inputs = _layer_inputs(model, variables, x, lengths)
    names = sorted(inputs, key=layer_sort_key)
    for name in names:
        if "[" in name:
            raise ValueError(f"layer {name!r} is applied more than once; cannot set it alone")
    if not names:
        raise ValueError(f"{type(model).__name__} sowed no SSM layer input")
    return names, inputs


def _layer_timescale(u, cls, params, name, opts: InitOptions):
    """Delta of one layer from its input ``u (batch, L, H)``, shaped for ``with_step_sizes``."""
    delta = autocorrelation_timescale(u, opts.kappa, opts.per_channel,
                                      num_iters=opts.power_iters)
    if opts.per_channel:
        step = jnp.asarray(cls.step_sizes(params))
        Lambda = jnp.asarray(cls.eigenvalues(params))
        if not (step.ndim >= 1 and step.shape[-1] == u.shape[-1] and Lambda.ndim > step.ndim):
            raise OptionError(f"config key 'init.per_channel' needs a layer with one step size "
                              f"per channel; layer {name!r} ({cls.__name__}) has step sizes of "
                              f"shape {tuple(step.shape)} for {u.shape[-1]} channels")
    return delta


def _set_layer(params, cls, name, opts: InitOptions, length: int, step=None):
    """One layer's parameter dict with the new step sizes (if given) and eigenvalues."""
    if step is not None:
        params = cls.with_step_sizes(params, step)
    if opts.imag != "layer" or opts.real_part is not None:
        Lambda = new_eigenvalues(cls.eigenvalues(params), cls.step_sizes(params), length, opts)
        params = cls.with_eigenvalues(params, Lambda)
        stored = jnp.asarray(cls.eigenvalues(params))
        target = jnp.broadcast_to(Lambda, stored.shape)
        if not jnp.iscomplexobj(stored):  # a layer with real eigenvalues keeps the real parts
            target = jnp.real(target)
        scale = 1 + float(jnp.max(jnp.abs(target)))
        finite = all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(params))
        ok = finite and bool(jnp.all(jnp.isfinite(stored))) and bool(
            jnp.allclose(stored, target, rtol=1e-5, atol=1e-6 * scale))
        if not ok:
            raise ValueError(f"layer {name!r} ({cls.__name__}) cannot store the requested "
                             f"eigenvalues (init.imag={opts.imag!r}, init.real_part="
                             f"{opts.real_part!r}): they come back as non-finite or different "
                             "values")
    if step is not None:
        got = jnp.asarray(cls.step_sizes(params))
        if not bool(jnp.allclose(got, jnp.broadcast_to(step, got.shape), rtol=1e-5)):
            raise ValueError(f"layer {name!r} ({cls.__name__}) did not store the step sizes")
    return params


def autocorrelation_init(model, variables, x, lengths=None, *, kappa: float = 1.0,
                         per_channel: bool = False, power_iters: int = 200):
    """The autocorrelation timescale rule, layer by layer from the first.

    For each SSM layer in order: one forward pass (the layers before already set) gives the
    layer's own input ``u (batch, L, H)`` (after the block's norm), and every step size of the
    layer is set to ``kappa / sqrt(L lambda_max(R))`` with ``R`` the autocorrelation of ``u``
    (channels pooled as extra samples, or one value per channel with ``per_channel``), through
    ``with_step_sizes``.

    Args:
      model: a ``SequenceModel`` (or any module whose SSM layers sow ``input``).
      variables: its variables (evaluation mode is used).
      x: (batch, L) int tokens or (batch, L, C) float, a batch of training inputs.
      lengths: None or (batch,) valid lengths (padded positions are zeros in the layer input).

    Returns:
      the variables with new step sizes (no "intermediates").
    """
    opts = InitOptions(timescale="autocorrelation", kappa=kappa, per_channel=per_channel,
                       power_iters=power_iters)
    return apply_init(model, variables, x, lengths, opts)


def apply_init(model, variables, x, lengths=None, opts: InitOptions | None = None):
    """Paper 2's init (the ``init`` section) applied to every SSM layer of ``model``.

    Layer by layer from the first: step sizes (autocorrelation rule, on the layer's own input
    with the layers before already set), then eigenvalues (family, real part; "dft" uses the
    new step sizes and the batch length L). See the module docstring.

    Args:
      model: a ``SequenceModel`` (or any module whose SSM layers sow ``input``).
      variables: its variables.
      x: (batch, L) or (batch, L, C), a batch of training inputs.
      lengths: None or (batch,) valid lengths.
      opts: :class:`InitOptions` (or a mapping of its keys).

    Returns:
      the variables (same structure; no "intermediates").
    """
    opts = opts if isinstance(opts, InitOptions) else init_options(opts)
    variables = _clean(variables)
    if not opts.active:
        return variables
    layer_types = find_layers(model, x, lengths)
    length = int(jnp.shape(x)[1])
    names, inputs = _layer_order(model, variables, x, lengths)
    names = [n for n in names if tuple(n.split("/")) in layer_types]  # SSM layers only
    for i, name in enumerate(names):
        path = tuple(name.split("/"))
        cls = layer_types[path]
        step = None
        if opts.timescale == "autocorrelation":
            if i:
                inputs = _layer_inputs(model, variables, x, lengths)  # earlier layers changed
            params = get_params(variables, ("params",) + path)
            step = _layer_timescale(inputs[name], cls, params, name, opts)
        variables = update_params(variables, ("params",) + path,
                                  lambda p: _set_layer(p, cls, name, opts, length, step))
    return variables


# ------------------------------------------------------------------ training-time Re <= 0


def project_real_parts(layers, mode: str, old_params, new_params):
    """Re of every layer's eigenvalues after an optimizer step (see the module docstring).

    Args:
      layers: ``{path: layer class}`` (:func:`~ssm_jax.layers.find_layers`).
      mode: "clip" (``Re <- min(Re, 0)``), "frozen" (``Re <- Re of old_params``) or "free".
      old_params, new_params: the ``params`` trees before and after the step.

    Returns:
      ``new_params`` with projected real parts (imaginary parts and the rest untouched).
    """
    if mode == "free":
        return new_params
    if mode not in REAL_PARAMS:
        raise ValueError(f"unknown real_param {mode!r}; valid names: {', '.join(REAL_PARAMS)}")
    for path, cls in layers.items():
        def fix(p, cls=cls, path=path):
            Lambda = cls.eigenvalues(p)
            if mode == "clip":
                re = jnp.minimum(jnp.real(Lambda), 0)
            else:
                re = jnp.real(cls.eigenvalues(get_params(old_params, path)))
            return cls.with_eigenvalues(p, re + 1j * jnp.imag(Lambda)
                                        if jnp.iscomplexobj(Lambda) else re)
        new_params = update_params(new_params, path, fix)
    return new_params


def real_part_projection(opts: InitOptions, layers):
    """``project(old_params, new_params) -> params`` for the train step, or None if
    ``real_param`` is "free"."""
    if opts is None or opts.real_param == "free":
        return None
    return functools.partial(project_real_parts, dict(layers), opts.real_param)


__all__ = ["IMAG_FAMILIES", "InitOptions", "REAL_PARAMS", "TIMESCALES", "align_steps",
           "apply_init", "autocorrelation_init", "family_eigenvalues", "init_options",
           "new_eigenvalues", "project_real_parts", "real_part_projection"]
