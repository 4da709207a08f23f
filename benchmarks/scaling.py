#!/usr/bin/env python
"""Scaling with the sequence length: time and peak memory of one forward+backward step of
S4D (convolution), S5 (scan) and the selective layer (scan) for L = 256 .. 16384, with the
fitted exponents of time ~ L^a and memory ~ L^b, and a PNG.

Expected: about L log L for the FFT convolution (a fitted exponent a little above 1) and L for
the scans. Peak memory is XLA's plan for the compiled step (arguments + outputs + the largest
set of live temporaries, ``compiled.memory_analysis()``), the same quantity for every layer.
Layers are built through the registry (``ssm_jax.layers``), so a layer type that is not
registered here is skipped with a note.

Usage: python benchmarks/scaling.py [--quick] [--lengths ...] [--batch 4] [--heads 64] [--out scaling.png]
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from ssm_jax.layers import LAYERS, get_layer

# name -> (registered layer, options)
CASES = {
    "S4D conv": ("s4d", dict(mode="conv")),
    "S5 scan": ("s5", dict(scan_method="sequential")),
    "selective scan": ("selective", dict()),
}


def step_fn(layer):
    return jax.value_and_grad(lambda v, u: jnp.mean(layer.apply(v, u) ** 2))


def measure(layer, variables, u, repeats):
    compiled = jax.jit(step_fn(layer)).lower(variables, u).compile()
    mem = compiled.memory_analysis()
    peak = mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
    jax.block_until_ready(compiled(variables, u))
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(variables, u))
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), peak


def fit_exponent(lengths, values):
    """Least-squares slope of log(value) against log(L)."""
    return float(np.polyfit(np.log(lengths), np.log(values), 1)[0])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="L = 64, 128, 256; H=8, state 8")
    p.add_argument("--lengths", type=int, nargs="+",
                   default=[256, 512, 1024, 2048, 4096, 8192, 16384])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--heads", type=int, default=64)
    p.add_argument("--state", type=int, default=64, help="S4D N and S5 P")
    p.add_argument("--selective-state", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="scaling.png")
    args = p.parse_args(argv)
    if args.quick:
        args.lengths, args.heads, args.state, args.selective_state, args.repeats = \
            [64, 128, 256], 8, 8, 4, 2
    print("# forward+backward step vs sequence length")
    print(f"backend {jax.default_backend()}, jax {jax.__version__}; batch={args.batch}, "
          f"H={args.heads}, S4D N = S5 P = {args.state}, selective N = {args.selective_state}; "
          f"median of {args.repeats} calls" +
          (f"; load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""))
    results = {}
    for name, (registered, options) in CASES.items():
        if registered not in LAYERS:
            print(f"(skipped {name}: layer {registered!r} is not registered in this version)")
            continue
        state = args.selective_state if registered == "selective" else args.state
        layer = get_layer(registered)(features=args.heads, d_state=state, **options)
        key = jax.random.key(0)
        variables = layer.init(key, jnp.ones((1, 8, args.heads)))
        results[name] = []
        for L in args.lengths:
            u = jax.random.normal(jax.random.fold_in(key, L), (args.batch, L, args.heads))
            try:
                t, mem = measure(layer, variables, u, args.repeats)
            except Exception as exc:  # noqa: BLE001  (OOM at the largest L: report, go on)
                print(f"  {name} L={L}: {type(exc).__name__}: {str(exc)[:120]}", file=sys.stderr)
                break
            results[name].append((L, t, mem))
            print(f"  {name:15s} L={L:6d}: {1e3 * t:9.1f} ms, peak {mem / 2 ** 20:9.1f} MiB",
                  flush=True)
    print("\n| layer | L | ms | peak MiB | ms per 1k steps |")
    print("|:---|---:|---:|---:|---:|")
    for name, rows in results.items():
        for L, t, mem in rows:
            print(f"| {name} | {L} | {1e3 * t:.1f} | {mem / 2 ** 20:.1f} | {1e6 * t / L:.2f} |")
    print("\n| layer | time exponent a (time ~ L^a) | memory exponent b | L range |")
    print("|:---|---:|---:|:---|")
    for name, rows in results.items():
        if len(rows) >= 2:
            Ls, ts, ms = zip(*rows)
            print(f"| {name} | {fit_exponent(Ls, ts):.2f} | {fit_exponent(Ls, ms):.2f} | "
                  f"{Ls[0]}..{Ls[-1]} |")
    Ls = np.array(args.lengths, float)
    print(f"\nreference: L log2 L over this range has fitted exponent "
          f"{fit_exponent(Ls, Ls * np.log2(Ls)):.2f}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, rows in results.items():
        Ls_, ts, ms = zip(*rows)
        axes[0].loglog(Ls_, np.array(ts) * 1e3, "o-", label=name)
        axes[1].loglog(Ls_, np.array(ms) / 2 ** 20, "o-", label=name)
    for ax, label in zip(axes, ("ms per forward+backward step", "peak memory (MiB)")):
        ax.set_xlabel("sequence length L")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.suptitle(f"batch {args.batch}, H={args.heads} ({jax.default_backend()})")
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"figure: {args.out}")
    return 0 if all(math.isfinite(t) for rows in results.values() for _, t, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
