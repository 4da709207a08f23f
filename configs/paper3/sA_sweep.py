"""Paper 3, Figure 5: s_A sweep -0.1..0.1 (step 0.02), 10 epochs, majority T=250, ListOps T=300.

    python -m ssm_jax.experiments.paper3.sA_sweep --config configs/paper3/sA_sweep.py[:SCALE]

Scales: ``cpu`` (default): the paper's settings (majority d=4, N=4, m=1000, batch 64; ListOps
d=16, N=4, m=1000, batch 64; 10 epochs; seeds 0..4, each s_A value of a seed with its own
init draw; the paper shows one seed); ``quick``: majority T=150, m=300, s_A in
{-0.1, -0.05, 0, 0.05, 0.1}, 5 epochs, seeds 0..2; ``paper``: as cpu; ``tiny``: tests.
IMDb (task ``imdb``, not in the default task list): tfds ``imdb_reviews`` at byte level (prepare it with
``tfds build imdb_reviews``; without it the run stops with the registry's data error), add it with
``--config.experiment.tasks="['imdb']"``. Its settings: d=16, N=4, m=2500, batch
256, T=500.
"""

import ml_collections

from ssm_jax.configs.paper3.tasks import imdb_task, listops_task, majority_task

SCALES = ("cpu", "quick", "paper", "tiny")
SWEEP = [round(-0.1 + 0.02 * i, 2) for i in range(11)]


def get_config(arg: str = "cpu"):
    c = ml_collections.ConfigDict()
    c.tasks = ml_collections.ConfigDict(dict(
        majority=majority_task(d=4, N=4, m=1000, epochs=10, batch=64),
        imdb=imdb_task(d=16, N=4, m=2500, epochs=10, batch=256),
        listops=listops_task(d=16, N=4, m=1000, epochs=10, batch=64)))
    c.experiment = ml_collections.ConfigDict(dict(
        name="sA_sweep", tasks=["majority", "listops"], majority_length=250, listops_length=300, imdb_length=500,
        s_A_values=SWEEP, seed=0, num_seeds=5, loss_threshold=100.0, explode_threshold=1e3))
    if arg == "quick":
        c.tasks.majority.data.update(num_train=300, num_test=300)
        c.tasks.majority.train.num_epochs = 5
        c.experiment.update(name="sA_sweep_quick", tasks=["majority"], majority_length=150,
                            s_A_values=[-0.1, -0.05, 0.0, 0.05, 0.1], num_seeds=3)
    elif arg == "tiny":
        c.tasks.majority.data.update(num_train=64, num_test=64)
        c.tasks.majority.train.update(num_epochs=2, batch_size=32)
        c.experiment.update(name="sA_sweep_tiny", tasks=["majority"], majority_length=40,
                            s_A_values=[-0.1, 0.0, 2.0], num_seeds=3)
    elif arg == "paper":
        c.experiment.name = "sA_sweep_paper"
    return c
