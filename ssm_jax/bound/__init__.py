"""ssm_jax.bound."""
