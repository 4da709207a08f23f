"""Paper 2: a trained sweep over the initial timescale Delta at several lengths L; does the best
Delta follow the predicted exponent of L?

    python -m ssm_jax.experiments.paper2.delta_sweep --config configs/paper2/delta_sweep.py[:SCALE]

Task (every scale): ``synthetic_regression`` with white-noise input (``R = E[x x^T] = I``, so
``lambda_max = 1`` at every L and the rule ``Delta = kappa / sqrt(L lambda_max)`` predicts
``Delta ~ L^-1/2``: our reconstruction of paper 2's Theorem 4.1, not a number printed in the
paper) and the target ``y = sum_s rho(L-1-s) x_s`` with the exponential kernel ``rho(s) =
exp(-s/decay)`` in absolute steps (decay 16; 8 at the quick scale), so the target itself does
not change with L (for L >> decay): whatever moves the best Delta with L is the length itself.
The rival readings are exponent 0 (the best Delta set by the target's time scale alone) and -1
(Delta ~ 1/L, the HiPPO reading for dependencies that stretch with L); the margin of 0.25
separates them from -1/2. Model: 1-layer S4D regression
(BatchNorm before the SSM, so its input is the normalized white noise), S4D-Lin imaginary parts,
Re = 0 at init kept <= 0 by clipping (the regime of the rule), every step size set to the swept
Delta at init (then trained with the other SSM parameters). Seed s draws the data
(``data.seed = s``), the init and the batch order.

Scales: ``quick`` (L in {32, 64, 128}, target decay 8 steps, 7 Deltas from 2^-10 to 2^-4,
4 seeds, 400 steps; about a minute on 2 cores), ``cpu`` (default; L in {64, 128, 256, 512},
decay 16, 9 Deltas from 2^-11 to 2^-3, 12 seeds, 600 steps; about half an hour), ``paper``
(L up to 2048, 12 seeds, 2000 steps, and the Re = -1/2 arm, predicted exponent 0), ``tiny``
(tests). The Delta grid stays below 1/8: S4D-Lin's discrete frequencies Delta pi n alias
beyond pi, which makes the loss non-monotone in Delta at large Delta.

Seeds and power: at the quick scale the per-seed slopes spread by about 0.45 (sd) over
L = 32..128; over L = 64..512 (2.5 times the spread of log L) that is about 0.3, and the
equivalence test with margin 0.25 then needs about 12 seeds for 80% power when the exponent
is the predicted one (and about as many to reject it when it is 0 or -1).
"""

import ml_collections

from ssm_jax.training.config import default_config

SCALES = ("cpu", "quick", "paper", "tiny")


def get_config(arg: str = "cpu"):
    c = default_config()
    c.data.update(name="synthetic_regression", process="white_noise", seq_len=64, in_channels=1,
                  num_train=512, num_val=64, num_test=512, noise=0.0, seed=0,
                  target_kernel="exponential", target_decay=16.0)
    c.model.update(layer="s4d", d_model=8, n_layers=1, projection="linear", norm="batch",
                   prenorm=True, dropout=0.0, pooling="last")
    c.model.ssm.update(d_state=16)
    c.optim.update(lr=1e-2, ssm_lr=3e-3, weight_decay=0.0, warmup_steps=20, schedule="cosine")
    c.train.update(batch_size=32, eval_batch_size=512, num_steps=600, progress=False)
    c.bound.init_batch_size = 256
    c.experiment = ml_collections.ConfigDict(dict(
        name="delta_sweep",
        lengths=[64, 128, 256, 512],
        deltas=[2.0 ** k for k in range(-11, -2)],
        real_parts=[0.0],  # Re at init; 0 is kept <= 0 by clipping, < 0 trains freely
        imag="lin",
        first_seed=0,
        num_seeds=12,
        kappa=1.0,  # the rule's constant, for the table's rule-Delta column
        # our reconstruction: Re = 0, white input: Delta ~ (L lambda_max)^-1/2; Re < 0: the
        # output bound no longer depends on L once |Re| Delta L >> 1
        predicted_exponent=-0.5,
        predicted_exponent_damped=0.0,
        margin=0.25,  # equivalence margin of the exponent: half the gap to the rivals 0 and -1
        confidence=0.95,
    ))
    if arg == "quick":
        c.data.target_decay = 8.0
        c.train.num_steps = 400
        c.experiment.update(name="delta_sweep_quick", lengths=[32, 64, 128],
                            deltas=[2.0 ** k for k in range(-10, -3)], real_parts=[0.0],
                            num_seeds=4)
    elif arg == "tiny":
        c.data.update(num_train=64, num_val=16, num_test=64)
        c.model.update(d_model=2)
        c.model.ssm.d_state = 4
        c.train.update(batch_size=16, num_steps=10)
        c.optim.warmup_steps = 2
        c.bound.init_batch_size = 32
        c.experiment.update(name="delta_sweep_tiny", lengths=[16, 32, 64],
                            deltas=[0.05, 0.2, 0.8], real_parts=[0.0], num_seeds=2)
    elif arg == "paper":
        c.data.update(num_train=2048, num_test=2048)
        c.model.update(d_model=16)
        c.model.ssm.d_state = 32
        c.train.num_steps = 2000
        c.experiment.update(name="delta_sweep_paper", lengths=[128, 256, 512, 1024, 2048],
                            deltas=[2.0 ** k for k in range(-13, -2)], real_parts=[0.0, -0.5])
    return c
