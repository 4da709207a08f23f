"""ssm-jax: generalization theory of state space models and the optimization designs it implies.

The public API (everything else is reachable through the subpackages, whose ``__all__`` lists
their own public names):

* layers and models: :class:`S4D`, :class:`S4`, :class:`S5`, :class:`SelectiveSSM`,
  :class:`SequenceModel`, :func:`get_layer`, :func:`layer_names`;
* the theory: :func:`generalization_measure`, :func:`layer_measures`, :func:`rescale_init`,
  :func:`make_regularizer` (paper 1), :func:`apply_init` (paper 2),
  :func:`model_bound_report` (paper 3);
* data and training: :func:`get_dataset`, :func:`load_config` (a shipped config by name, or
  a file), :func:`default_config`, :func:`parse_config`, :func:`train_and_evaluate`,
  :func:`load_run`, :func:`evaluate_model`, :func:`train_members`.
"""

__version__ = "0.1.0"

from ssm_jax.bound import generalization_measure, layer_measures, make_regularizer, rescale_init
from ssm_jax.bound.selective import model_bound_report
from ssm_jax.bound.timescale_init import apply_init
from ssm_jax.data import get_dataset
from ssm_jax.layers import S4, S4D, S5, SelectiveSSM, get_layer, layer_names
from ssm_jax.models import SequenceModel
from ssm_jax.training.config import default_config, load_config, parse_config
from ssm_jax.training.loop import evaluate_model, load_run, train_and_evaluate
from ssm_jax.training.vectorized import train_members

__all__ = ["S4", "S4D", "S5", "SelectiveSSM", "SequenceModel", "__version__", "apply_init",
           "default_config", "evaluate_model", "generalization_measure", "get_dataset",
           "get_layer", "layer_measures", "layer_names", "load_config", "load_run",
           "make_regularizer", "model_bound_report", "parse_config", "rescale_init",
           "train_and_evaluate", "train_members"]
