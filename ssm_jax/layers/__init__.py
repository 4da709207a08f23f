"""Flax modules that own SSM parameters and call the pure kernels.

Every SSM layer implements the protocol of :mod:`ssm_jax.layers.base` and registers itself
with ``@register_layer(name)``. The modules of this package are imported here, so a new
layer type is one new module (registered on import); the built-in ones are also named here,
so IDEs and type checkers see them.
"""

import importlib
import pkgutil

from ssm_jax.layers.base import (LAYERS, SSMLayer, find_layers, get_layer, get_params,
                                 layer_names, layer_options, map_layers, register_layer,
                                 update_params)
from ssm_jax.layers.block import NORMS, PROJECTIONS, SequenceBlock

from ssm_jax.layers.s4 import S4
from ssm_jax.layers.s4d import S4D
from ssm_jax.layers.s5 import S5
from ssm_jax.layers.selective import SelectiveSSM

for _module in pkgutil.iter_modules(__path__):  # a layer module added later registers itself
    if _module.name not in ("base", "block"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["LAYERS", "NORMS", "PROJECTIONS", "S4", "S4D", "S5", "SSMLayer", "SelectiveSSM",
           "SequenceBlock", "find_layers", "get_layer", "get_params", "layer_names",
           "layer_options", "map_layers", "register_layer", "update_params"]
