"""Paper 2 on Long Range Arena: the S4D recipe with only the init changed
(``docs/theory.md#paper-2-the-proposed-initialization``).

    ssm-jax train --config configs/paper2/lra.py:<task>[_baseline] --workdir DIR

``<task>`` is one of listops, imdb, aan, cifar10, pathfinder (the data must be prepared
offline: LRA release under ``$SSM_JAX_DATA`` / ``./data``, tfds for imdb / cifar10; a GPU is
needed for the paper's step counts). Without suffix: the proposed init (each layer's Delta
from its own input autocorrelation with kappa = 1, S4D-Lin imaginary parts, Re = 0 kept <= 0
by clipping after every step); ``_baseline``: the standard S4D-LegS init (Re = -1/2, Delta
log-uniform in [1e-3, 1e-1]). Model, optimizer and schedule follow the S4 repository's LRA
configs (state-spaces/s4 ``configs/experiment/lra/s4-*.yaml`` @ 62a14bb), as in
``configs/paper1/ablation.py``. Not run here (no LRA data offline).
"""

import os

from ssm_jax.training.config import default_config

# task: (data section, layers, width, d_state, prenorm, dropout, batch, lr, steps, warmup,
#        steps per epoch of our split)
LRA = {
    "listops": (dict(name="listops"), 6, 256, 4, False, 0.0, 32, 0.01, 120_000, 12_000, 3000),
    "imdb": (dict(name="imdb"), 6, 256, 4, True, 0.0, 16, 0.01, 50_000, 5_000, 1407),
    "aan": (dict(name="aan"), 6, 256, 4, True, 0.0, 64, 0.01, 50_000, 5_000, 2299),
    "cifar10": (dict(name="cifar10", input_kind="floats"), 6, 512, 64, False, 0.1, 50, 0.01,
                180_000, 18_000, 900),
    "pathfinder": (dict(name="pathfinder", input_kind="floats"), 6, 256, 64, True, 0.0, 64,
                   0.004, 500_000, 50_000, 2500),
}
PROPOSED = dict(timescale="autocorrelation", kappa=1.0, imag="lin", real_part=0.0,
                real_param="clip")
SCALES = tuple(LRA) + tuple(f"{t}_baseline" for t in LRA)


def get_config(arg: str = "cifar10"):
    task, _, variant = arg.partition("_")
    data, layers, width, d_state, prenorm, dropout, batch, lr, steps, warmup, epoch = LRA[task]
    c = default_config()
    c.data.update(data)
    if task == "listops":  # None would generate a small ListOps set instead of reading LRA's
        c.data.data_dir = os.environ.get("SSM_JAX_DATA") or "data"
    else:
        c.data.data_dir = None
    c.model.update(layer="s4d", d_model=width, n_layers=layers, projection="glu", norm="batch",
                   prenorm=prenorm, dropout=dropout, pooling="mean")
    c.model.ssm.update(d_state=d_state, dt_min=1e-3, dt_max=1e-1, ssm_init="legs",
                       bidirectional=True)
    c.optim.update(lr=lr, ssm_lr=1e-3, weight_decay=0.05, warmup_steps=warmup, schedule="cosine")
    c.train.update(batch_size=batch, eval_batch_size=2 * batch, num_steps=steps, log_every=100,
                   eval_every=epoch, checkpoint_every=epoch, keep_checkpoints=2)
    c.bound.init_batch_size = 64
    if variant != "baseline":
        c.init.update(PROPOSED)
    return c
