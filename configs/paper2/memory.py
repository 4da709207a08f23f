"""Paper 2, experiment 2: memory capacity with Re = 0 vs Re = -1/2.

    python -m ssm_jax.experiments.paper2.memory --config configs/paper2/memory.py[:SCALE]

Scales: ``cpu`` (default; L = 256, 1024, 4096, 64 modes, 10 seeds of 4096 training sequences),
``quick`` (L = 256, 1024, 5 seeds of 2048), ``paper`` (L = 1024..16384, 10 seeds of 8192),
``tiny`` (tests). No training loop: the read-out is the least-squares solution (closed form),
its held-out R^2 exact in expectation. Margins and the level are the ``margin``,
``total_margin`` and ``confidence`` keys.
"""

import ml_collections

from ssm_jax.training.config import default_config

SCALES = ("cpu", "quick", "paper", "tiny")


def get_config(arg: str = "cpu"):
    c = default_config()
    c.experiment = ml_collections.ConfigDict(dict(
        name="memory", lengths=[256, 1024, 4096], modes=64, real_parts=[0.0, -0.5],
        deltas=["auto", "0.01"], kappa=1.0, bins=8, long_fraction=0.5, train_sequences=4096,
        first_seed=0, num_seeds=10, margin=1.0, total_margin=1.0, confidence=0.95,
    ))
    if arg == "quick":
        c.experiment.update(name="memory_quick", lengths=[256, 1024], train_sequences=2048,
                            num_seeds=5)
    elif arg == "tiny":
        c.experiment.update(name="memory_tiny", lengths=[32, 64], modes=8, train_sequences=256,
                            num_seeds=3)
    elif arg == "paper":
        c.experiment.update(name="memory_paper", lengths=[1024, 4096, 16384],
                            train_sequences=8192)
    return c
