"""Paper 2, experiment 1: E[y_L^2] at init vs L, log-uniform vs autocorrelation Delta.

    python -m ssm_jax.experiments.paper2.output_scale --config configs/paper2/output_scale.py[:SCALE]

Scales: ``cpu`` (default; L = 2^8..2^14, 64 modes, 6 input families), ``quick`` (L = 2^8..2^12,
32 modes), ``paper`` (as cpu with a finer Delta quadrature), ``tiny`` (tests). No training:
exact expectations (NumPy, FFT Toeplitz products). Verdicts: bootstrap intervals over the
input families at level ``confidence`` (``resamples`` draws, ``seed``).
"""

import ml_collections

from ssm_jax.training.config import default_config

SCALES = ("cpu", "quick", "paper", "tiny")


def get_config(arg: str = "cpu"):
    c = default_config()
    c.experiment = ml_collections.ConfigDict(dict(
        name="output_scale",
        log2_lengths=[8, 9, 10, 11, 12, 13, 14],
        families=["white", "ar1_0.9", "ar1_0.99", "powerlaw_0.3", "powerlaw_0.7", "constant"],
        modes=64, kappa=1.0, real_parts=[0.0, -0.5], dt_min=1e-3, dt_max=1e-1, dt_points=16,
        growth_tol=0.1, min_growth_ratio=4.0, delta_tol=0.1, confidence=0.95, resamples=4000,
        seed=0,
    ))
    if arg == "quick":
        c.experiment.update(name="output_scale_quick", log2_lengths=[8, 9, 10, 11, 12], modes=32,
                            dt_points=8)
    elif arg == "tiny":
        c.experiment.update(name="output_scale_tiny", log2_lengths=[6, 7, 8], modes=8,
                            dt_points=4, families=["white", "constant"])
    elif arg == "paper":
        c.experiment.update(name="output_scale_paper", dt_points=32)
    return c
