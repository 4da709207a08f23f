"""ssm_jax.bound: the generalization measure of paper 1, its init scaling rule and regularizer.

* :func:`input_statistics`, :class:`StreamingStatistics`: per-time-step mean/std over a batch.
* :func:`generalization_measure` (paper), :func:`covariance_measure` (tighter),
  :func:`batch_measure` (either, by name, from a batch), :func:`final_time_kernel`
  (bidirectional layers).
* :func:`collect_layers`: every layer's kernel and input from a forward pass's intermediates.
* :func:`layer_measures`, :func:`rescale_init`: per-layer tau of a model; the scaling rule;
  :func:`layer_readouts`: the read-out of each layer ("top_mean": final time below the top
  layer, time mean at it); :func:`without_dropout`: a train-mode pass with dropout off.
* :func:`regularizer`: reduction of every layer's tau inside a jitted loss.
* :class:`BoundOptions`, :func:`make_regularizer`: the
  ``bound`` config section and the loss term it configures (``term(intermediates, batch)``).
"""

from ssm_jax.bound.autocorrelation import (
    autocorrelation_timescale, condition_number, feature_gram, feature_matrix,
    sample_feature_gram, sample_features, top_eigenvalue,
)
from ssm_jax.bound.collect import LayerIO, collect_layers
from ssm_jax.bound.config import BoundOptions, make_regularizer, resolve_readout
from ssm_jax.bound.init_scaling import (forward_intermediates, layer_measures, no_dropout,
                                        rescale_init, without_dropout)
from ssm_jax.bound.measure import (
    MEASURES, READOUTS, STACK_READOUTS, batch_measure, covariance_measure, direction_measures,
    final_time_kernel, generalization_measure, layer_readouts, readout_measure, readout_weights,
    weighted_measure,
)
from ssm_jax.bound.regularizer import REDUCTIONS, layer_taus, regularizer
from ssm_jax.bound.selective import (decay_sums, model_bound_report, selective_bound_terms,
                                     selective_norms, spectral_abscissa)
from ssm_jax.bound.statistics import StatsState, StreamingStatistics, input_statistics

__all__ = [
    "BoundOptions", "MEASURES", "REDUCTIONS", "LayerIO", "StatsState",
    "StreamingStatistics", "batch_measure", "collect_layers", "covariance_measure",
    "final_time_kernel", "generalization_measure", "input_statistics",
    "layer_measures", "layer_taus", "make_regularizer", "regularizer", "rescale_init",
    # read-outs (issue 11)
    "READOUTS", "direction_measures", "forward_intermediates", "readout_measure",
    "readout_weights", "resolve_readout", "weighted_measure",
    # per-layer read-outs of a stack; forward passes without dropout (issue 19)
    "STACK_READOUTS", "layer_readouts", "no_dropout", "without_dropout",
    # paper 2
    "autocorrelation_timescale", "condition_number", "feature_gram", "feature_matrix",
    "sample_feature_gram", "sample_features", "top_eigenvalue",
    # paper 3
    "decay_sums", "model_bound_report", "selective_bound_terms", "selective_norms",
    "spectral_abscissa",
]
