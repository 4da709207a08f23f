"""Paper 3, Figure 2: s_A = 0 init, accuracy vs T over 5 seeds (the paper's Experiment 2).

    python -m ssm_jax.experiments.paper3.length_independence --config configs/paper3/length_independence.py[:SCALE]

Scales: ``cpu`` (default): the paper's settings: majority d=4, N=4, m=1000/1000, noise 0.25,
batch 64, 40 epochs, T = 25..400 step 25, seeds 1..5; ListOps d=16, N=4, m=1000/1000, batch
64, 50 epochs, T = 100..1000; ``quick``: majority, m=300, T = 50, 150, 300, 3 seeds, 8
epochs; ``paper``: as cpu; ``tiny``: tests.
IMDb (task ``imdb``, not in the default task list): tfds ``imdb_reviews`` at byte level (prepare it with
``tfds build imdb_reviews``; without it the run stops with the registry's data error), add it with
``--config.experiment.tasks="['imdb']"``. Its settings: d=16, N=4, all 25k/25k,
batch 256, 30 epochs, T = 100..1500.
"""

import ml_collections

from ssm_jax.configs.paper3.tasks import imdb_task, listops_task, majority_task

SCALES = ("cpu", "quick", "paper", "tiny")


def get_config(arg: str = "cpu"):
    c = ml_collections.ConfigDict()
    c.tasks = ml_collections.ConfigDict(dict(
        majority=majority_task(d=4, N=4, m=1000, epochs=40, batch=64, s_A=0.0),
        imdb=imdb_task(d=16, N=4, m=0, epochs=30, batch=256, s_A=0.0),
        listops=listops_task(d=16, N=4, m=1000, epochs=50, batch=64, s_A=0.0)))
    c.experiment = ml_collections.ConfigDict(dict(
        name="length_independence", tasks=["majority", "listops"],
        majority_lengths=list(range(25, 401, 25)), listops_lengths=list(range(100, 1001, 100)),
        imdb_lengths=list(range(100, 1501, 100)),
        s_A=0.0, first_seed=1, num_seeds=5, max_retries=5, confidence=0.95, alpha=0.05, margin=0.05))
    if arg == "quick":
        c.tasks.majority.data.update(num_train=300, num_test=300)
        c.tasks.majority.train.num_epochs = 8
        c.experiment.update(name="length_independence_quick", tasks=["majority"],
                            majority_lengths=[50, 150, 300], num_seeds=3)
    elif arg == "tiny":
        c.tasks.majority.data.update(num_train=64, num_test=64)
        c.tasks.majority.train.update(num_epochs=3, batch_size=32)
        c.experiment.update(name="length_independence_tiny", tasks=["majority"],
                            majority_lengths=[10, 20, 40], num_seeds=2)
    elif arg == "paper":
        c.experiment.name = "length_independence_paper"
    return c
