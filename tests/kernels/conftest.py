"""Fixtures for the kernel tests.

Every test in this directory runs in float64 (``jax_enable_x64``) unless it is marked
``@pytest.mark.float32``; the previous setting is restored afterwards so that other test
modules are unaffected.
"""
import jax
import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "float32: run the test with jax_enable_x64 off")


@pytest.fixture(autouse=True)
def x64(request):
    previous = bool(jax.config.jax_enable_x64)
    enable = request.node.get_closest_marker("float32") is None
    jax.config.update("jax_enable_x64", enable)
    try:
        yield enable
    finally:
        jax.config.update("jax_enable_x64", previous)
