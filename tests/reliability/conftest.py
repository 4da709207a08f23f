"""The faults of the reliability suite reuse the training tests' smoke run and helpers."""

from tests.training.conftest import smoke_run  # noqa: F401  (a fixture)
