"""The SSM layer protocol: what every SSM layer declares, so that the rest of the package
(optimizer groups, init scaling, config validation, CLI help, the data-driven inits of papers
2 and 3) works for any layer without knowing its type.

A layer is a subclass of :class:`SSMLayer` registered with :func:`register_layer`:

* **fields**: ``features`` (H) first, then its options, each made with
  :func:`ssm_jax.options.option` (type, default, allowed values, help). The registry derives
  ``Layer.Options``, a frozen (hashable) dataclass of those fields: the validated form of the
  ``model.ssm`` config section. Fields that are not options (e.g. ``param_dtype``) are passed
  through unchecked.
* ``check_options(options, prefix)``: cross-field rules (e.g. an even state size under
  conjugate symmetry), raising :class:`~ssm_jax.options.OptionError`.
* ``core_params``: names (in the layer's own parameter dict) of the SSM core, which the
  optimizer puts in its own group (own learning rate, no weight decay).
* ``output_params``: names of the output map (output channel on axis 0) whose scale the
  output is linear in; the init scaling rule of paper 1 divides them.
* ``eigenvalues(params)`` / ``with_eigenvalues(params, Lambda)``: read / write the continuous-
  time eigenvalues; ``step_sizes(params)`` / ``with_step_sizes(params, step)``: read / write
  the step sizes Delta. Pure functions of the layer's parameter dict; values broadcast to the
  stored shapes. Papers 2 and 3 set Delta, real and imaginary parts and s_A through these.
* ``__call__(u)``: ``u (batch, L, H) -> (batch, L, H)``; sows ``input`` (the layer input) and
  ``kernel`` (``(H, L)`` SISO or ``(H, H, L)`` MIMO; plus ``kernel_rev`` for bidirectional
  layers) into ``intermediates`` when that collection is mutable.

:func:`find_layers` returns the module path and class of every SSM layer a model applies (an
abstract trace, no compute), so nothing depends on module names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Callable, ClassVar

import flax.linen as nn
import jax

from ssm_jax import options as opt
from ssm_jax.options import OptionError

LAYERS: dict[str, type] = {}


class SSMLayer(nn.Module):
    """Base class of the SSM layers (see the module docstring for the contract)."""

    layer_name: ClassVar[str] = ""
    Options: ClassVar[type] = None
    core_params: ClassVar[frozenset] = frozenset()
    output_params: ClassVar[frozenset] = frozenset()

    @classmethod
    def check_options(cls, options, prefix: str = "") -> None:
        """Cross-field rules on an ``Options`` instance; raise OptionError naming the key."""

    @staticmethod
    def eigenvalues(params):
        """Continuous-time eigenvalues (complex) from the layer's parameter dict."""
        raise NotImplementedError

    @staticmethod
    def with_eigenvalues(params, Lambda):
        """The parameter dict with eigenvalues ``Lambda`` (broadcast to the stored shape)."""
        raise NotImplementedError

    @staticmethod
    def step_sizes(params):
        """Step sizes Delta (positive) from the layer's parameter dict."""
        raise NotImplementedError

    @staticmethod
    def with_step_sizes(params, step):
        """The parameter dict with step sizes ``step`` (broadcast to the stored shape)."""
        raise NotImplementedError

    def options(self):
        """This module's options as its ``Options`` instance (checked)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self.Options)}
        return opt.parse(self.Options, values)


def _options_class(cls) -> type:
    """Frozen dataclass ``<Layer>Options`` of the layer's option (and pass-through) fields
    (``features``, H, comes from the model)."""

    def check(self, prefix: str = "") -> None:
        cls.check_options(self, prefix)

    def as_kwargs(self) -> dict:
        """The options as keyword arguments of the layer (``Layer(features=H, **kwargs)``)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    namespace = {"check": check, "as_kwargs": as_kwargs, "layer_cls": cls}
    return opt.options_class(cls, f"{cls.__name__}Options", exclude=("features",),
                             namespace=namespace,
                             doc=f"Options of :class:`{cls.__name__}` (frozen, hashable).")


def register_layer(name: str) -> Callable[[type], type]:
    """Class decorator: register an :class:`SSMLayer` subclass under ``name`` (``model.layer``)
    and derive its ``Options`` dataclass."""

    def wrap(cls):
        if not (isinstance(cls, type) and issubclass(cls, SSMLayer)):
            raise TypeError(f"register_layer({name!r}) needs an SSMLayer subclass, got {cls!r}")
        existing = LAYERS.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"layer {name!r} is already registered ({existing.__module__}."
                             f"{existing.__qualname__})")
        cls.layer_name = name
        cls.Options = _options_class(cls)
        cls.Options.__qualname__ = f"{cls.__qualname__}.Options"  # pickled by reference
        LAYERS[name] = cls
        return cls

    return wrap


def layer_names() -> tuple:
    """Registered layer names, in registration order."""
    return tuple(LAYERS)


def get_layer(name: str) -> type:
    """The layer class registered as ``name``; OptionError listing the names otherwise."""
    if name not in LAYERS:
        raise OptionError(f"unknown layer {name!r}; valid names: "
                          f"{', '.join(map(repr, LAYERS))}")
    return LAYERS[name]


def layer_options(name: str, values=None, prefix: str = "", *, options_only: bool = False):
    """``Options`` of layer ``name`` from a mapping (or an Options instance), checked.

    Args:
      name: registered layer name.
      values: mapping of option values (missing ones take the defaults), an ``Options``
        instance of this layer, or None.
      prefix: key prefix for messages, e.g. ``"model.ssm."``.
      options_only: reject pass-through fields set to other values than their defaults
        (config files may set only options).
    """
    cls = get_layer(name)
    if isinstance(values, cls.Options):
        return values
    if dataclasses.is_dataclass(values) and not isinstance(values, type):
        raise OptionError(f"{prefix or 'ssm '}options are {type(values).__name__}, not those of "
                          f"layer {name!r} ({cls.Options.__name__})")
    values = dict(values.to_dict() if hasattr(values, "to_dict") else (values or {}))
    if options_only:
        allowed = [f.name for f in opt.option_fields(cls.Options)]
        defaults = {f.name: f.default for f in dataclasses.fields(cls.Options)}
        for key, value in values.items():
            if key not in allowed and not (key in defaults and value is defaults[key]):
                raise OptionError(f"unknown config key {prefix + key!r} for layer {name!r}; "
                                  f"allowed: {', '.join(allowed)}")
    return opt.parse(cls.Options, values, prefix)


def find_layers(model: nn.Module, *args, **kwargs) -> dict:
    """Module path and class of every SSM layer that ``model.init(rng, *args, **kwargs)``
    applies, found by an abstract trace (``jax.eval_shape``: no compute, no parameters).

    Returns:
      ``{("block_0", "ssm"): S4D, ...}``: the path of the layer's parameters in
      ``variables["params"]``.
    """
    found = {}

    def interceptor(next_fun, call_args, call_kwargs, context):
        module = context.module
        if isinstance(module, SSMLayer) and context.method_name == "__call__":
            found[tuple(module.path)] = type(module)
        return next_fun(*call_args, **call_kwargs)

    with nn.intercept_methods(interceptor):
        jax.eval_shape(lambda *a: model.init(jax.random.key(0), *a, **kwargs), *args)
    return found


def get_params(tree: Mapping, path: tuple):
    """The node of nested mapping ``tree`` at ``path`` (ValueError naming the path if absent)."""
    node = tree
    for i, key in enumerate(path):
        if not isinstance(node, Mapping) or key not in node:
            raise ValueError(f"no parameters at {'/'.join(path[:i + 1])!r}")
        node = node[key]
    return node


def update_params(tree: Mapping, path: tuple, fn: Callable):
    """Copy of nested mapping ``tree`` with the node at ``path`` replaced by ``fn(node)``."""
    if not path:
        return fn(tree)
    if not isinstance(tree, Mapping) or path[0] not in tree:
        raise ValueError(f"no parameters at {path[0]!r}")
    return type(tree)({**tree, path[0]: update_params(tree[path[0]], path[1:], fn)})


def map_layers(params: Mapping, layers: Mapping, fn: Callable):
    """Apply ``fn(layer_cls, layer_params) -> layer_params`` to every layer of ``layers``
    (``{path: cls}`` from :func:`find_layers`) in ``params``."""
    for path, cls in layers.items():
        params = update_params(params, path, lambda p, cls=cls: fn(cls, p))
    return params


__all__ = ["LAYERS", "SSMLayer", "find_layers", "get_layer", "get_params", "layer_names",
           "layer_options", "map_layers", "register_layer", "update_params"]
