"""Paper 2, experiment 3: kappa(G) per imaginary-part family (discrete and continuous-time
Gram), GD iterations vs kappa over random targets, trade-off over random targets.

    python -m ssm_jax.experiments.paper2.conditioning --config configs/paper2/conditioning.py[:SCALE]

Scales: ``cpu`` (default; L = 1024, m = 8..64, 40 random targets), ``quick`` (L = 256,
m = 8..32, 20 targets), ``paper`` (L = 4096, m = 8..128, 40 targets), ``tiny`` (tests). No
training: exact Gram matrices (float64). The verdicts' levels and margins are the
``confidence``, ``alpha``, ``slope_margin`` and ``min_input_ratio`` keys.
"""

import ml_collections

from ssm_jax.training.config import default_config

SCALES = ("cpu", "quick", "paper", "tiny")


def get_config(arg: str = "cpu"):
    c = default_config()
    c.experiment = ml_collections.ConfigDict(dict(
        name="conditioning", length=1024,
        families=["lin", "inv", "legs", "real", "dft", "clustered"],
        modes=[8, 16, 32, 64], deltas=["2/L", "auto", "0.01"], real_parts=[0.0, -0.5],
        inputs=["white", "ar1_0.9"], kappa=1.0, cluster_scale=0.1, gd_eps=1e-3,
        gd_max_iters=1e9, well_conditioned=10.0, ill_conditioned=1e6,
        targets=40, max_kappa=1e12, slope_margin=0.1, confidence=0.95, alpha=0.05,
        min_input_ratio=2.0, resamples=4000,
        target_freqs=2, target_center=0.25, target_spacing=0.5, tradeoff_modes=8,
        spacings=[0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 4.0], gd_budget=1000, seed=0,
    ))
    if arg == "quick":
        c.experiment.update(name="conditioning_quick", length=256, modes=[8, 16, 32], targets=20)
    elif arg == "tiny":
        c.experiment.update(name="conditioning_tiny", length=64, modes=[4, 8],
                            families=["lin", "real", "dft", "clustered"], deltas=["2/L", "0.01"],
                            spacings=[0.05, 0.5, 4.0], targets=6, resamples=500)
    elif arg == "paper":
        c.experiment.update(name="conditioning_paper", length=4096, modes=[8, 16, 32, 64, 128])
    return c
