"""Pure-JAX SSM kernels: no Flax, no config, no I/O. Shapes are for one sequence."""

from ssm_jax.kernels.conv import causal_conv, mimo_kernel, ssm_kernel, ssm_recurrence, ssm_step
from ssm_jax.kernels.discretize import DISCRETIZATIONS, discretize
from ssm_jax.kernels.dplr import dplr_kernel, hippo_nplr
from ssm_jax.kernels.init import (
    LAMBDA_INITS,
    hippo_legs,
    hippo_n,
    hippo_normal,
    init_Lambda,
    log_step_uniform,
    s4d_inv,
    s4d_lin,
    s4d_real,
)
from ssm_jax.kernels.projections import (diagonal_readout, input_projection, output_projection,
                                         scaled_input)
from ssm_jax.kernels.scan import SCAN_METHODS, auto_method, linear_recurrence
from ssm_jax.kernels.selective import selective_scan

__all__ = [
    "DISCRETIZATIONS", "LAMBDA_INITS", "SCAN_METHODS", "auto_method", "causal_conv",
    "diagonal_readout", "discretize", "input_projection", "output_projection", "scaled_input",
    "hippo_legs", "hippo_n", "hippo_normal", "init_Lambda", "linear_recurrence", "log_step_uniform", "mimo_kernel",
    "s4d_inv", "s4d_lin", "s4d_real", "selective_scan", "ssm_kernel", "ssm_recurrence", "ssm_step",
    "dplr_kernel", "hippo_nplr",
]
