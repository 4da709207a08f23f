"""Paper 1, experiment 1: output scale at initialization across temporal input patterns, with
and without the initialization scaling rule (8).

    python -m ssm_jax.experiments.paper1.output_scale --config configs/paper1/output_scale.py[:SCALE]

Scales: ``cpu`` (default; the theorem's model and the deep model at depth 4, L = 256, 1024,
4096, 8192, 9 patterns, 3 seeds), ``quick`` (theorem + depth 2, L = 256 and 1024, 5
patterns, 2 seeds; part of ``ssm-jax reproduce --scale quick``), ``paper`` (width 128, 5
seeds), ``tiny`` (tests).

No training. For every input pattern, depth and init seed: a regression ``SequenceModel``
(pooling "last", so the rule measures every layer at the final time) is initialized,
optionally rescaled with ``rescale_init`` on one batch of the pattern ("paper": the paper's
measure; "covariance": the tighter variant), and the RMS of its outputs is measured on a
second, independent batch of the same pattern.

Verdicts: the reduction factor of the spread over patterns (within-seed std of log10 scale,
pooled over seeds and L) must exceed ``min_reduction`` (2) with its whole bootstrap interval
(``confidence`` 0.95, ``resamples`` 2000 draws of the (seed, pattern) cells) to be reproduced,
and lie below it to be not reproduced. At ``quick`` (2 seeds x 5 patterns = 10 cells) the
intervals are wide (about a factor 2-4 either side); ``cpu`` has 27 cells at 4 lengths.

Model choice: ``norm="batch"``. At initialization in evaluation mode BatchNorm is the identity
(running mean 0, variance 1), so every SSM layer sees the temporal pattern itself (through the
encoder's per-channel affine map). With ``norm="layer"`` the pre-norm divides each time step
by its own scale across channels, which for a 1-channel input leaves only the sign of x(t).
"""

import ml_collections

from ssm_jax.training.config import default_config

# Temporal patterns: keys of the synthetic_regression data section (ssm_jax.data.synthetic).
PATTERNS = {
    "white_noise": dict(process="white_noise"),
    "mean_constant": dict(process="white_noise_with_mean", mean_profile="constant",
                          mean_level=2.0),
    "mean_linear": dict(process="white_noise_with_mean", mean_profile="linear", mean_level=4.0),
    "mean_sine": dict(process="white_noise_with_mean", mean_profile="sine", mean_level=0.0,
                      mean_amplitude=2.0, mean_period=64.0),
    "ou_tau3": dict(process="ornstein_uhlenbeck", tau=3.0),
    "ou_tau30": dict(process="ornstein_uhlenbeck", tau=30.0),
    "ou_tau300": dict(process="ornstein_uhlenbeck", tau=300.0),
    "brownian": dict(process="brownian_motion"),
    "gp_smooth": dict(process="gaussian_process", length_scale=16.0),
}


SCALES = ("cpu", "quick", "paper", "tiny")


def get_config(arg: str = "cpu"):
    c = default_config()
    c.data.update(name="synthetic_regression", process="white_noise", seq_len=1024, noise=0.0)
    c.model.update(layer="s4d", d_model=32, n_layers=1, projection="linear", norm="batch",
                   prenorm=True, dropout=0.0, pooling="last")
    c.model.ssm.update(d_state=64, dt_min=1e-3, dt_max=1e-1)
    c.experiment = ml_collections.ConfigDict(dict(
        name="output_scale",
        depths=[4],
        theorem=True,  # also the theorem's model: one bare linear SSM, no D, read-out at T
        lengths=[256, 1024, 4096, 8192],
        first_seed=0,
        num_seeds=3,
        # "none": standard S4D init; "paper" / "covariance": rescale_init with that measure.
        rules=["none", "paper", "covariance"],
        patterns=list(PATTERNS),
        pattern_specs=ml_collections.ConfigDict(PATTERNS),
        rescale_batch=128,  # batch the rule is computed on
        eval_batch=128,  # independent batch the output scale is measured on
        min_reduction=2.0,  # claim threshold: the spread over patterns must shrink this much
        confidence=0.95,  # level of the bootstrap interval of the reduction factor
        resamples=2000,  # bootstrap draws of the (seed, pattern) cells
    ))
    if arg == "quick":
        c.data.seq_len = 512
        c.model.update(d_model=16)
        c.model.ssm.d_state = 32
        c.experiment.update(name="output_scale_quick", depths=[2], num_seeds=2,
                            lengths=[256, 1024],
                            patterns=["white_noise", "mean_constant", "mean_sine", "ou_tau30",
                                      "brownian"], rescale_batch=64, eval_batch=64)
    elif arg == "tiny":
        c.data.seq_len = 64
        c.model.update(d_model=8)
        c.model.ssm.d_state = 8
        c.experiment.update(name="output_scale_tiny", depths=[2], num_seeds=1, lengths=[32, 64],
                            patterns=["white_noise", "brownian"], rescale_batch=16, eval_batch=32)
    elif arg == "paper":
        c.data.seq_len = 2048
        c.model.update(d_model=128)
        c.experiment.update(name="output_scale_paper", num_seeds=5, eval_batch=256,
                            rescale_batch=256)
    return c
