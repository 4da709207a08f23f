"""Paper 3's model and recipe as one plain trainer config (``ssm-jax train``).

    ssm-jax train --config configs/paper3/majority.py[:SCALE] --workdir DIR

Majority (the paper's generator, noise 0.25 on train only, no validation split), embedding ->
one paper-form selective block (d=4, N=4, s_A=0) -> last-step logit, BCE + collapse penalty,
Adam 1e-2 + coupled L2 1e-5, reduce-on-plateau, clip 5, 40 epochs, T=200.
Scales: ``cpu`` (default, as above), ``unstable`` (s_A = 0.1, 10 epochs), ``tiny`` (tests).
"""

from ssm_jax.configs.paper3.tasks import majority_task

SCALES = ("cpu", "unstable", "tiny")


def get_config(arg: str = "cpu"):
    if arg == "unstable":
        return majority_task(T=200, epochs=10, s_A=0.1)
    if arg == "tiny":
        c = majority_task(T=12, m=64, epochs=2, batch=16)
        return c
    return majority_task(T=200)
