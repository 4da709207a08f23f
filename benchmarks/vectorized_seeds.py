#!/usr/bin/env python
"""Speed-up of training the members of a sweep together (``ssm_jax.training.vectorized``, one
jitted vmapped step) against training them one by one with the trainer
(``train_and_evaluate``), on two quick sweeps:

* ``paper3``: the paper-3 quick setting (majority, d=4, N=4, m=300, batch 64, paper recipe),
  ``--seeds`` seeds;
* ``paper1``: the runs of the paper-1 ``gen_gap:quick`` sweep (one-layer S4D regression with
  BatchNorm; seeds x lambda for the regularizer, seeds for the matched kernel_l2 penalty),
  through ``ssm_jax.experiments.sweeps.run_sweep`` with ``vectorize`` on and off.

Both sides include compilation (what a sweep pays); the persistent compilation cache is off so
neither reuses the other's compiles. Prints the wall-clock of each, the ratio, and the largest
difference of the final numbers between the two (they must agree to float tolerance).

Usage: python benchmarks/vectorized_seeds.py [--sweep paper3 paper1] [--T 150] [--seeds 3]
       [--epochs 8] [--m 300]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time

import jax


def paper3(args, tmp):
    from ssm_jax.configs.paper3.tasks import majority_task
    from ssm_jax.training.config import parse_config
    from ssm_jax.training.loop import train_and_evaluate
    from ssm_jax.training.vectorized import train_members

    base = parse_config(majority_task(T=args.T, m=args.m, epochs=args.epochs))
    cfgs = [base.replace(**{"seed": s}) for s in range(1, args.seeds + 1)]
    t = time.perf_counter()
    reports = train_members(cfgs, [f"{tmp}/v{i}" for i in range(len(cfgs))])
    t_vec = time.perf_counter() - t
    t = time.perf_counter()
    singles = [train_and_evaluate(cfg, f"{tmp}/s{i}") for i, cfg in enumerate(cfgs)]
    t_one = time.perf_counter() - t
    diff = max(abs(r["test"]["accuracy"] - s["test"]["accuracy"]) for r, s in zip(reports, singles))
    label = (f"paper 3 quick: majority T={args.T}, m={args.m}, {args.epochs} epochs, "
             f"{len(cfgs)} seeds")
    return label, len(cfgs), t_one, t_vec, f"test accuracy {diff:.2g}"


def paper1(args, tmp):
    from ssm_jax.experiments import sweeps
    from ssm_jax.experiments.config import load
    from ssm_jax.experiments.paper1 import gen_gap

    exp = load("configs/paper1/gen_gap.py:quick", gen_gap.Settings)
    runs = gen_gap.make_runs(exp)
    evaluate = gen_gap.Evaluator(exp.settings.checkpoint)
    times, rows = {}, {}
    for vectorize in (True, False):
        t = time.perf_counter()
        rows[vectorize] = sweeps.run_sweep(runs, f"{tmp}/{'vec' if vectorize else 'one'}",
                                           evaluate, "gen_gap", vectorize=vectorize)
        times[vectorize] = time.perf_counter() - t
    diff = max(abs(a["result"]["test_mse"] - b["result"]["test_mse"]) / abs(b["result"]["test_mse"])
               for a, b in zip(rows[True], rows[False]))
    groups = len(sweeps.vector_groups(runs))
    label = f"paper 1 gen_gap:quick: {len(runs)} runs in {groups} vectorized groups"
    return label, len(runs), times[False], times[True], f"relative test MSE {diff:.2g}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sweep", nargs="+", default=["paper3", "paper1"], choices=["paper3", "paper1"])
    p.add_argument("--T", type=int, default=150)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--m", type=int, default=300)
    args = p.parse_args(argv)
    jax.config.update("jax_enable_compilation_cache", False)
    results = []
    for name in args.sweep:
        tmp = tempfile.mkdtemp()
        try:
            results.append({"paper3": paper3, "paper1": paper1}[name](args, tmp))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print(f"  measured {results[-1][0]}", flush=True)
    print("# vectorized sweeps (compilation included)")
    print("| sweep | runs | one by one s | vectorized s | speed-up | max difference |")
    print("|:---|---:|---:|---:|---:|:---|")
    for label, n, t_one, t_vec, diff in results:
        print(f"| {label} | {n} | {t_one:.1f} | {t_vec:.1f} | {t_one / t_vec:.2f}x | {diff} |")


if __name__ == "__main__":
    main()
