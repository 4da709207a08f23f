"""A tiny config: a few hundred steps in well under 30 s on 2 CPU cores (digits, no download).

    ssm-jax train --config configs/smoke.py --workdir /tmp/smoke
"""

from ssm_jax.training.config import default_config

SCALES = ("cpu",)


def get_config(arg: str = "cpu"):
    c = default_config()
    c.data.name = "digits"
    c.model.update(layer="s4d", d_model=16, n_layers=1, projection="linear", pooling="mean")
    c.model.ssm.update(d_state=8, dt_min=1e-2, dt_max=1e-1)
    c.optim.update(lr=1e-2, ssm_lr=3e-3, weight_decay=0.0, warmup_steps=20)
    c.train.update(batch_size=32, eval_batch_size=256, num_steps=200, log_every=20, eval_every=50,
                   checkpoint_every=50, keep_checkpoints=2)
    return c
