"""ssm_jax.training."""
