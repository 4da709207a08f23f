"""Data tests never touch the user's cache or data folders, and never download."""

import pytest


@pytest.fixture(autouse=True)
def _isolated_data_env(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SSM_JAX_CACHE", str(tmp_path_factory.mktemp("ssm_jax_cache")))
    monkeypatch.setenv("SSM_JAX_DATA", str(tmp_path_factory.mktemp("ssm_jax_data")))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path_factory.mktemp("tfds_data")))
