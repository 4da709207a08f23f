"""Paper 3, Table 1: bound terms and C_F vs T at trained parameters.

    python -m ssm_jax.experiments.paper3.bound_terms --config configs/paper3/bound_terms.py[:SCALE]

Scales: ``cpu`` (default): majority at the paper's settings (d=4, N=4, m=1000, batch 64,
40 epochs), T in {50, 100, 200, 400}, inits s_A in {-0.1, 0.1}, 2 seeds each; ``quick``:
T in {50, 200}, m=300, 5 epochs; ``paper``: as cpu with 5 seeds; ``tiny``: tests. Verdicts:
bootstrap intervals over the trained runs of the median exponent (level ``confidence``),
thresholds ``flat_exponent`` / ``steep_exponent`` (s_A < 0) and ``exponential_exponent`` /
``flat_limit`` (s_A > 0).
"""

import ml_collections

from ssm_jax.configs.paper3.tasks import majority_task

SCALES = ("cpu", "quick", "paper", "tiny")


def get_config(arg: str = "cpu"):
    c = ml_collections.ConfigDict()
    c.tasks = ml_collections.ConfigDict(dict(
        majority=majority_task(d=4, N=4, m=1000, epochs=40, batch=64)))
    c.experiment = ml_collections.ConfigDict(dict(
        name="bound_terms", task="majority", lengths=[50, 100, 200, 400], s_A_values=[-0.1, 0.1],
        first_seed=1, num_seeds=2, grid=[100, 1000, 10000, 100000], flat_exponent=0.5,
        steep_exponent=1.5, exponential_exponent=2.0, flat_limit=1.0, confidence=0.95,
        resamples=4000, bootstrap_seed=0))
    if arg == "quick":
        c.tasks.majority.data.update(num_train=300, num_test=300)
        c.tasks.majority.train.num_epochs = 5
        c.experiment.update(name="bound_terms_quick", lengths=[50, 200])
    elif arg == "tiny":
        c.tasks.majority.data.update(num_train=64, num_test=64)
        c.tasks.majority.train.update(num_epochs=2, batch_size=32)
        c.experiment.update(name="bound_terms_tiny", lengths=[10, 30], num_seeds=1)
    elif arg == "paper":
        c.experiment.update(name="bound_terms_paper", num_seeds=5)
    return c
