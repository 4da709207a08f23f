import jax
import pytest


@pytest.fixture
def x64():
    """Enable float64 for one test and restore the previous setting afterwards."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


@pytest.fixture(autouse=True)
def _fast_compile(fast_compile):
    """Every layer test compiles with fewer optimizations (see tests/conftest.py)."""
    yield
