"""Paper 2, experiment 2: delayed recall with Re = 0 vs Re = -1/2.

    python -m experiments.paper2.memory --config configs/paper2/memory.py[:SCALE]

Scales: ``cpu`` (default; L = 256, 1024, 4096, 64 modes), ``quick`` (L = 256, 1024), ``paper``
(L = 1024..16384), ``tiny`` (tests). No training: optimal read-outs in closed form.
"""

import ml_collections

from ssm_jax.training.config import default_config

SCALES = ("cpu", "quick", "paper", "tiny")


def get_config(arg: str = "cpu"):
    c = default_config()
    c.experiment = ml_collections.ConfigDict(dict(
        name="memory", lengths=[256, 1024, 4096], modes=64, real_parts=[0.0, -0.5],
        deltas=["auto", "0.01"], kappa=1.0, bins=8, long_fraction=0.5, min_ratio=2.0,
    ))
    if arg == "quick":
        c.experiment.update(name="memory_quick", lengths=[256, 1024])
    elif arg == "tiny":
        c.experiment.update(name="memory_tiny", lengths=[64], modes=8)
    elif arg == "paper":
        c.experiment.update(name="memory_paper", lengths=[1024, 4096, 16384])
    return c
