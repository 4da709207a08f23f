#!/usr/bin/env python
"""Speed-up of training the seeds of one setting together (``ssm_jax.training.vectorized``,
one jitted vmapped step) against training them one by one with the trainer
(``train_and_evaluate``), on the paper-3 quick sweep's setting (majority, d=4, N=4, m=300,
batch 64, paper recipe) by default. Both include compilation (what a sweep pays); the
persistent compilation cache is off so neither reuses the other's compiles. Prints the
wall-clock of each and the ratio, and checks that the final test accuracies agree.

Usage: python benchmarks/vectorized_seeds.py [--T 150] [--seeds 3] [--epochs 8] [--m 300]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time

import jax


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--T", type=int, default=150)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--m", type=int, default=300)
    args = p.parse_args(argv)
    jax.config.update("jax_enable_compilation_cache", False)
    from experiments.paper3.common import majority_task
    from ssm_jax.training.config import parse_config
    from ssm_jax.training.loop import train_and_evaluate
    from ssm_jax.training.vectorized import train_members

    c = majority_task(T=args.T, m=args.m, epochs=args.epochs)
    base = parse_config(c)
    cfgs = [base.replace(**{"seed": s}) for s in range(1, args.seeds + 1)]
    tmp = tempfile.mkdtemp()
    try:
        t = time.perf_counter()
        reports = train_members(cfgs, [f"{tmp}/v{i}" for i in range(len(cfgs))])
        t_vec = time.perf_counter() - t
        t = time.perf_counter()
        singles = [train_and_evaluate(cfg, f"{tmp}/s{i}") for i, cfg in enumerate(cfgs)]
        t_one = time.perf_counter() - t
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"# vectorized seeds: majority T={args.T}, m={args.m}, {args.epochs} epochs, "
          f"{args.seeds} seeds (compilation included)")
    print("| | wall-clock s |\n|:---|---:|")
    print(f"| one by one (train_and_evaluate) | {t_one:.1f} |")
    print(f"| vectorized (train_members) | {t_vec:.1f} |")
    print(f"| speed-up | {t_one / t_vec:.2f}x |")
    diffs = [abs(r["test"]["accuracy"] - s["test"]["accuracy"]) for r, s in zip(reports, singles)]
    print(f"max |test accuracy difference| = {max(diffs):.2g}")


if __name__ == "__main__":
    main()
