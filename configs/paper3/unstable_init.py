"""Paper 3, Figure 1: s_A = 0.1 init, T sweep, 10 epochs (the paper's Experiment 1).

    python -m ssm_jax.experiments.paper3.unstable_init --config configs/paper3/unstable_init.py[:SCALE]

Scales: ``cpu`` (default): the paper's own settings for majority (d=4, N=4, m=1000, batch 64,
T = 50..300) and ListOps (d=16, N=4, m=1000, batch 64, T = 100..600), 10 epochs, seeds 0..4
trained together (the paper shows seed 0 alone; one draw cannot carry a verdict);
``quick``: majority only, m = 300, T = 50, 150, 300, 4 epochs, seeds 0..2; ``paper``: as cpu;
``tiny``: tests. The authors' released ListOps files are read when
``--config.experiment.listops_data_dir`` points at their ``dataset/listops`` folder.
IMDb (task ``imdb``, not in the default task list): tfds ``imdb_reviews`` at byte level (prepare it with
``tfds build imdb_reviews``; without it the run stops with the registry's data error), add it with
``--config.experiment.tasks="['imdb']"``. Its settings: d=16, N=4, m=2500 (the paper's 10%),
batch 256, T = 300..550.
"""

import ml_collections

from ssm_jax.configs.paper3.tasks import imdb_task, listops_task, majority_task

SCALES = ("cpu", "quick", "paper", "tiny")


def get_config(arg: str = "cpu"):
    c = ml_collections.ConfigDict()
    c.tasks = ml_collections.ConfigDict(dict(
        majority=majority_task(d=4, N=4, m=1000, epochs=10, batch=64, s_A=0.1),
        imdb=imdb_task(d=16, N=4, m=2500, epochs=10, batch=256, s_A=0.1),
        listops=listops_task(d=16, N=4, m=1000, epochs=10, batch=64, s_A=0.1)))
    c.experiment = ml_collections.ConfigDict(dict(
        name="unstable_init", tasks=["majority", "listops"],
        majority_lengths=[50, 100, 150, 200, 250, 300],
        listops_lengths=[100, 200, 300, 400, 500, 600],
        imdb_lengths=[300, 350, 400, 450, 500, 550], s_A=0.1, seed=0, loss_threshold=100.0,
        sA_tolerance=0.05, alpha=0.05, num_seeds=5,
        explode_threshold=1e3))
    if arg == "quick":
        c.tasks.majority.data.update(num_train=300, num_test=300)
        c.tasks.majority.train.num_epochs = 4
        c.experiment.update(name="unstable_init_quick", tasks=["majority"],
                            majority_lengths=[50, 150, 300], num_seeds=3)
    elif arg == "tiny":
        c.tasks.majority.data.update(num_train=64, num_test=64)
        c.tasks.majority.train.update(num_epochs=2, batch_size=32)
        c.experiment.update(name="unstable_init_tiny", tasks=["majority"],
                            majority_lengths=[10, 40, 80], num_seeds=2)
    elif arg == "paper":
        c.experiment.name = "unstable_init_paper"
    return c
