"""Experiments over the trainer: one module per paper figure or table (``paper<N>/``).

``config`` (load, override and parse experiment configs once), ``sweeps`` (runs of the
trainer, reused and resumed), ``tables`` and ``figures`` (outputs), ``claims`` (verdicts),
``runner`` (one experiment, standalone or in a plan) and ``reproduce`` (``ssm-jax
reproduce``).
"""
