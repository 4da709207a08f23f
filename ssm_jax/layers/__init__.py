"""Flax modules that own SSM parameters and call the pure kernels.

Every SSM layer implements the protocol of :mod:`ssm_jax.layers.base` and registers itself
with ``@register_layer(name)``. The modules of this package are imported here, so a new
layer type is one new module: nothing else needs an edit.
"""

import importlib
import pkgutil

from ssm_jax.layers.base import (LAYERS, SSMLayer, find_layers, get_layer, get_params,
                                 layer_names, layer_options, map_layers, register_layer,
                                 update_params)
from ssm_jax.layers.block import NORMS, PROJECTIONS, SequenceBlock

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "block"):
        importlib.import_module(f"{__name__}.{_module.name}")

globals().update({cls.__name__: cls for cls in LAYERS.values()})  # S4D, S5, ...

__all__ = ["LAYERS", "NORMS", "PROJECTIONS", "SSMLayer", "SequenceBlock", "find_layers",
           "get_layer", "get_params", "layer_names", "layer_options", "map_layers",
           "register_layer", "update_params"] + [cls.__name__ for cls in LAYERS.values()]
