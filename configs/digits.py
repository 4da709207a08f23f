"""S4D on scikit-learn digits as length-64 pixel sequences (built-in data, no download).

    ssm-jax train --config configs/digits.py --workdir results/digits
"""

from ssm_jax.training.config import default_config

SCALES = ("cpu",)


def get_config(arg: str = "cpu"):
    c = default_config()
    c.data.name = "digits"
    c.model.update(layer="s4d", d_model=64, n_layers=3, projection="glu", norm="layer",
                   dropout=0.1, pooling="mean")
    c.model.ssm.update(d_state=32, dt_min=1e-2, dt_max=1e-1)
    c.optim.update(lr=4e-3, ssm_lr=1e-3, weight_decay=0.05, warmup_steps=60)
    c.train.update(batch_size=64, num_steps=1200, log_every=20, eval_every=100,
                   checkpoint_every=200)
    return c
