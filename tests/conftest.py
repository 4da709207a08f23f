import os

import jax
import pytest

# Tests run on CPU.
os.environ.setdefault("JAX_PLATFORMS", "cpu")


@pytest.fixture
def fast_compile():
    """Fewer XLA optimizations for one test: compilation dominates small eager tests on CPU."""
    previous = jax.config.values["jax_disable_most_optimizations"]
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)
