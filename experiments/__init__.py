"""Experiment scripts: one module per paper figure or table (see experiments/common.py)."""
