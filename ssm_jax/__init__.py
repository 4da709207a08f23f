"""ssm-jax: generalization theory of state space models and the optimization designs it implies."""

__version__ = "0.1.0"
