"""Flax modules that own SSM parameters and call the pure kernels."""

from ssm_jax.layers.block import ACTIVATIONS, NORMS, SSM_LAYERS, SequenceBlock
from ssm_jax.layers.s4d import S4D
from ssm_jax.layers.s5 import S5

# Parameter names of the SSM core (eigenvalues, input matrix, step size) in every SSM layer:
# the optimizer puts these in the SSM group (own learning rate, no weight decay).
SSM_CORE_PARAMS = frozenset({
    "Lambda_re", "Lambda_im", "B_re", "B_im", "B", "log_step",
    "Lambda_re_rev", "Lambda_im_rev", "B_re_rev", "B_im_rev", "log_step_rev",
})

__all__ = ["ACTIVATIONS", "NORMS", "S4D", "S5", "SSM_CORE_PARAMS", "SSM_LAYERS", "SequenceBlock"]
