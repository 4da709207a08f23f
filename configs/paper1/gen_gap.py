"""Paper 1, experiment 2: the generalization gap on synthetic regression: the regularizer
(9) and penalties at matched strength, tau vs the gap across other factors, the gap vs n and L.

    python -m ssm_jax.experiments.paper1.gen_gap --config configs/paper1/gen_gap.py[:SCALE]

Scales:

* ``cpu`` (default): L=128, d_model 16, 1500 steps, 4 processes, lambda in {0, 1e-2, 1e-1},
  n = 64, the regularizer and 3 data-independent penalties at matched strength; factor
  sweeps on ``white_noise`` and ``mean_var``: n in {32, 64, 128, 256}, L in {64, 128, 256},
  dt_max in {0.01, 0.1, 1}, d_model in {8, 16, 32}; tau vs the gap over L, dt_max and
  d_model. 6 seeds: the quick scale's paired spread of the relative gap reduction (d = mean /
  std about 2.2 for both effect claims) needs 4 seeds for 80% power of the 95% t-interval;
  6 keep 80% at an effect a third smaller (d = 1.5).
* ``quick``: L=64, d_model 8, 200 steps, the ``mean_var`` process, lambda in {0, 1e-1}, the
  regularizer and kernel_l2, 3 seeds; n in {32, 64, 128}, L in {32, 64, 128}, dt_max in
  {0.01, 0.1, 1}; tau vs the gap over L and dt_max. The model is still far from fitting
  after 200 steps (train MSE about half the target variance), so its gaps are small and
  noisy: a check of the pipeline more than of the claims.
* ``paper``: L=1024, d_model 64, n in {128, 512, 2048}, 5 seeds; n up to 2048, L up to 2048.
* ``tiny``: the tests (n and dt_max sweeps; no L sweep, whose new lengths would each
  compile; the tests of the L claim add one to synthetic rows).

Data: ``synthetic_regression`` with the input processes of ``PROCESSES`` (white noise; a
non-zero, time-varying mean with a growing variance; OU; GP), target
``y = sum_s rho(L-1-s) x_s + noise`` (rho: decaying oscillation). Model: a 1-layer S4D
regression ``SequenceModel`` (pooling "last"). Regularizer sweep: ``reg_lambda`` x penalty x
training-set size x seed; factor sweeps at lambda = 0, one factor at a time around the base
point (n = the first training-set size, L = ``data.seq_len``, dt_max = ``model.ssm.dt_max``,
width = ``model.d_model``). The seed draws the data and the init, so the runs of one seed
share both (training sets of different n are nested: the first n sequences of one draw).
Weight decay is 0, so the regularizer is the only explicit one; the numbers are taken at the
final parameters (``experiment.checkpoint``, the pre-registered primary metric). Margins
and levels: ``gap_margin`` (equivalence margin of the two effect claims, a fraction of the
baseline gap), ``length_exponent_max`` (the L claim's bound on the exponent), ``confidence``
and ``alpha``; see :mod:`ssm_jax.experiments.paper1.gen_gap` for each claim's rule.
"""

import ml_collections

from ssm_jax.training.config import default_config


SCALES = ("cpu", "quick", "paper", "tiny")

# Input processes: overlays of the data section (ssm_jax.data.synthetic). The data-dependent
# terms of tau (mean, time-varying std) differ between them; white noise has neither.
PROCESSES = {
    "white_noise": dict(process="white_noise"),
    "mean_var": dict(process="white_noise_with_mean", mean_profile="sine", mean_level=1.0,
                     mean_amplitude=1.0, mean_period=32.0, std_ramp=3.0),
    "ou": dict(process="ornstein_uhlenbeck", tau=20.0, std_ramp=1.0),
    "gp": dict(process="gaussian_process", length_scale=8.0),
}


def get_config(arg: str = "cpu"):
    c = default_config()
    c.data.update(name="synthetic_regression", process="white_noise", seq_len=128, in_channels=1,
                  num_train=256, num_val=256, num_test=2048, noise=0.5, seed=0,
                  target_kernel="decaying_oscillation", target_decay=16.0, target_period=8.0)
    c.model.update(layer="s4d", d_model=16, n_layers=1, projection="linear", norm="batch",
                   prenorm=True, dropout=0.0, pooling="last")
    c.model.ssm.update(d_state=32, dt_min=1e-3, dt_max=1e-1)
    c.optim.update(lr=3e-3, ssm_lr=1e-3, weight_decay=0.0, warmup_steps=50, schedule="cosine")
    c.train.update(batch_size=32, eval_batch_size=512, num_steps=1500, log_every=100,
                   eval_every=500, checkpoint_every=1500, keep_checkpoints=1)
    c.bound.update(init_scaling=False, measure="paper", channel_reduce="mean", layer_reduce="sum")
    c.experiment = ml_collections.ConfigDict(dict(
        name="gen_gap",
        lambdas=[0.0, 1e-2, 1e-1],
        train_sizes=[64],
        processes=list(PROCESSES),
        process_specs=ml_collections.ConfigDict(PROCESSES),
        penalties=["measure", "kernel_l2", "kernel_l1", "c_l2"],
        first_seed=0,
        num_seeds=6,  # 80% power at the quick scale's paired spread (see the docstring)
        checkpoint="last",  # "last" (final parameters) or "best" (best validation loss)
        vectorize=True,  # runs differing only in seed / lambda train together (one vmapped step)
        max_members=0,  # largest vectorized group (0: no limit)
        # factor sweeps at lambda = 0, one factor at a time around the base point
        # (n = train_sizes[0], L = data.seq_len, dt_max = model.ssm.dt_max, d_model)
        size_sweep=[32, 64, 128, 256],
        length_sweep=[64, 128, 256],
        dt_max_sweep=[1e-2, 1e-1, 1.0],
        width_sweep=[8, 16, 32],
        sweep_processes=["white_noise", "mean_var"],  # empty: every process
        correlation_factors=["L", "dt_max", "width"],  # tau vs gap (n: claim 4, not tau's)
        confidence=0.95,  # effect intervals (the equivalence test uses 2 confidence - 1)
        gap_margin=0.1,  # equivalence margin: a tenth of the cell's mean baseline gap
        length_exponent_max=0.5,  # "at most logarithmic in L": exponent below sqrt(L)'s
        alpha=0.05,  # level of the Kendall and exponent tests
    ))
    if arg == "quick":
        c.data.update(seq_len=64, num_val=64, num_test=512)
        c.model.update(d_model=8)
        c.model.ssm.d_state = 16
        c.train.update(num_steps=200, eval_every=200, checkpoint_every=200, log_every=100)
        c.optim.warmup_steps = 20
        c.experiment.update(name="gen_gap_quick", lambdas=[0.0, 1e-1], train_sizes=[64],
                            num_seeds=3, processes=["mean_var"],
                            penalties=["measure", "kernel_l2"], sweep_processes=[],
                            size_sweep=[32, 64, 128], length_sweep=[32, 64, 128],
                            dt_max_sweep=[1e-2, 1e-1, 1.0], width_sweep=[],
                            correlation_factors=["L", "dt_max"])
    elif arg == "tiny":
        c.data.update(seq_len=32, num_val=32, num_test=64)
        c.model.update(d_model=4)
        c.model.ssm.d_state = 4
        c.train.update(batch_size=16, num_steps=20, log_every=10, eval_every=10,
                       checkpoint_every=20)
        c.optim.warmup_steps = 5
        c.experiment.update(name="gen_gap_tiny", lambdas=[0.0, 1.0], train_sizes=[32],
                            num_seeds=2, processes=["mean_var"],
                            penalties=["measure", "kernel_l2"], sweep_processes=[],
                            size_sweep=[16, 32, 48], length_sweep=[],
                            dt_max_sweep=[1e-2, 1e-1, 1.0], width_sweep=[],
                            correlation_factors=["dt_max"])  # no L sweep: new shapes compile
    elif arg == "paper":
        # A synthetic setting of the paper's kind (its exact sizes are not known): L ~ 1000,
        # a few hundred to a few thousand samples, lambda in 1e-4..1e-1 (the paper's sweep).
        c.data.update(seq_len=1024, num_test=4096)
        c.model.update(d_model=64)
        c.model.ssm.d_state = 64
        c.train.update(num_steps=5000, eval_every=500, checkpoint_every=5000)
        c.experiment.update(name="gen_gap_paper", train_sizes=[128, 512, 2048], num_seeds=5,
                            lambdas=[0.0, 1e-4, 1e-3, 1e-2, 1e-1],
                            size_sweep=[128, 256, 512, 1024, 2048],
                            length_sweep=[256, 512, 1024, 2048], width_sweep=[32, 64, 128])
    return c
