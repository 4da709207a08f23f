#!/usr/bin/env python
"""Speed of the real SSM layers in each mode: S4D convolution, S4D recurrence (associative |
sequential scan), S5 (associative | sequential scan).

Each cell times the layer module itself (``ssm_jax.layers.S4D`` / ``S5``, the code training
runs) on a batch ``u (batch, L, H)`` float32, as the forward pass (y) or forward+backward
(value and gradient of mean(y^2) with respect to all parameters). Parameters and inputs are
jit arguments (nothing closed over). Each cell: compile (timed separately), one warm-up call,
then the median of --repeats timed calls with block_until_ready; the ratio is to the fastest
cell of the row, measured side by side in this process. A roofline table follows: achieved
GFLOP/s and GB/s of each cell and their fractions of the peaks measured in this process
(benchmarks/roofline.py states the work model).

State sizes: S4D keeps ``N/2`` complex modes per channel (``--state N``, conj_sym); S5 keeps
``P/2`` complex modes shared by the channels (``--s5-state P``).

Memory: the recurrent modes materialize their state, ``(batch, L, H, N/2)`` complex64 for
S4D (2.1 GB at L=4096, batch 16, H=128, N=64). The batch is processed in chunks of ``c``
sequences (``lax.map``; gradients accumulated), ``c`` the largest divisor of the batch whose
S4D state fits in ``--max-state-gb``; the same chunks for every layer, so the ratios compare
like with like.

Usage: python benchmarks/scan.py [--quick] [--lengths 256 1024 4096] [--batch 16] ...
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
from jax import lax

from roofline import peaks, print_roofline, roofline_row, s4d_work, s5_work
from ssm_jax.kernels import auto_method
from ssm_jax.layers import S4D, S5

# name -> (layer class, options)
CASES = {
    "s4d-conv": (S4D, dict(mode="conv")),
    "s4d-assoc": (S4D, dict(mode="recurrent", scan_method="associative")),
    "s4d-seq": (S4D, dict(mode="recurrent", scan_method="sequential")),
    "s5-assoc": (S5, dict(scan_method="associative")),
    "s5-seq": (S5, dict(scan_method="sequential")),
}
MODES = ("forward", "forward+backward")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke-test sizes: batch 2, H=8, N=P=16, L=256, 2 repeats")
    p.add_argument("--lengths", type=int, nargs="+", default=None,
                   help="sequence lengths L (default 256 1024 4096; quick: 256)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 16)")
    p.add_argument("--heads", type=int, default=None, help="channels H (default 128)")
    p.add_argument("--state", type=int, default=None, help="S4D state size N (default 64)")
    p.add_argument("--s5-state", type=int, default=None, help="S5 state size P (default 64)")
    p.add_argument("--repeats", type=int, default=None, help="timed calls per cell (default 5)")
    p.add_argument("--cell-seconds", type=float, default=30.0,
                   help="time budget per cell: fewer repeats (at least 2) when one call is slow")
    p.add_argument("--max-state-gb", type=float, default=1.0,
                   help="memory budget for one chunk's S4D state")
    p.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    quick = dict(lengths=[256], batch=2, heads=8, state=16, s5_state=16, repeats=2)
    full = dict(lengths=[256, 1024, 4096], batch=16, heads=128, state=64, s5_state=64, repeats=5)
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def make_fn(layer, mode):
    """Jittable ``f(variables, u_chunks)`` with ``u_chunks (batch // c, c, L, H)``."""

    def forward(variables, u_chunks):
        return lax.map(lambda u: layer.apply(variables, u), u_chunks)

    def loss(variables, u):
        return jnp.mean(layer.apply(variables, u) ** 2)

    def forward_backward(variables, u_chunks):
        value_and_grad = jax.value_and_grad(loss)

        def body(acc, u):
            value, grads = value_and_grad(variables, u)
            return (acc[0] + value, jax.tree.map(jnp.add, acc[1], grads)), None

        zeros = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, variables))
        (value, grads), _ = lax.scan(body, zeros, u_chunks)
        n = u_chunks.shape[0]
        return value / n, jax.tree.map(lambda g: g / n, grads)

    return forward if mode == "forward" else forward_backward


def chunk_size(batch, length, heads, modes, max_state_gb):
    per_sequence = length * heads * modes * 8  # complex64 S4D state of one sequence
    fits = max(1, int(max_state_gb * 1e9 // per_sequence))
    return max(d for d in range(1, batch + 1) if batch % d == 0 and d <= fits)


def time_cell(fn, args, repeats, cell_seconds):
    """(compile seconds, median run seconds, number of timed runs)."""
    jitted = jax.jit(fn)
    t0 = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(*args))  # warm-up
    warm_s = time.perf_counter() - t0
    repeats = max(min(repeats, 2), min(repeats, int(cell_seconds / max(warm_s, 1e-9))))
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        runs.append(time.perf_counter() - t0)
    return compile_s, statistics.median(runs), repeats


def fmt_row(length, cells, cases):
    ok = [v for v in cells.values() if isinstance(v, float)]
    best = min(ok) if ok else None
    out = [str(length)]
    for m in cases:
        v = cells.get(m)
        out.append(f"{v * 1e3:.1f} ({v / best:.2f}x)" if isinstance(v, float) else str(v))
    fastest = min((m for m in cases if isinstance(cells.get(m), float)),
                  key=lambda m: cells[m], default="-")
    return "| " + " | ".join(out + [fastest]) + " |"


def main(argv=None):
    args = parse_args(argv)
    print("# SSM layers by mode: S4D conv | S4D recurrent (associative, sequential) | "
          "S5 (associative, sequential)")
    print(f"backend: {jax.default_backend()} ({jax.devices()[0].device_kind}), jax {jax.__version__}")
    print(f"batch={args.batch}, H={args.heads}, S4D N={args.state} ({args.state // 2} complex "
          f"modes per channel), S5 P={args.s5_state} ({args.s5_state // 2} complex modes), float32")
    print(f"timing: median of {args.repeats} calls after one warm-up (at least 2 when a cell "
          f"would exceed {args.cell_seconds:g} s), ms; (ratio) to the fastest cell of the row")
    if hasattr(os, "getloadavg"):
        print(f"host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    print(f'scan_method="auto" on this backend picks: {auto_method()}')
    key = jax.random.PRNGKey(args.seed)
    results = {mode: {} for mode in args.modes}
    compiles = {mode: {} for mode in args.modes}
    print()
    for length in args.lengths:
        c = chunk_size(args.batch, length, args.heads, args.state // 2, args.max_state_gb)
        print(f"L={length}: lax.map over {args.batch // c} chunk(s) of {c} sequence(s)")
        u = jax.random.normal(jax.random.fold_in(key, length),
                              (args.batch // c, c, length, args.heads), jnp.float32)
        for mode in args.modes:
            results[mode][length], compiles[mode][length] = {}, {}
            for name in args.cases:
                cls, options = CASES[name]
                state = args.state if cls is S4D else args.s5_state
                layer = cls(features=args.heads, d_state=state, **options)
                variables = layer.init(key, u[0, :1, :8])
                try:
                    compile_s, run_s, _ = time_cell(make_fn(layer, mode), (variables, u),
                                                    args.repeats, args.cell_seconds)
                    results[mode][length][name], compiles[mode][length][name] = run_s, compile_s
                except Exception as exc:  # noqa: BLE001  (OOM etc.: report and go on)
                    kind = "OOM" if "RESOURCE_EXHAUSTED" in str(exc) else type(exc).__name__
                    results[mode][length][name] = compiles[mode][length][name] = kind
                    print(f"  {mode} {name} L={length}: {kind}: {str(exc)[:200]}", file=sys.stderr)
                v = results[mode][length][name]
                print(f"  {mode:16s} {name:9s} {v if isinstance(v, str) else '%.1f ms' % (1e3 * v)}",
                      flush=True)

    header = "| L | " + " | ".join(f"{m} ms (ratio)" for m in args.cases) + " | fastest |"
    rule = "|" + "---:|" * (len(args.cases) + 1) + ":---|"
    for mode in args.modes:
        print(f"\n## {mode}\n\n{header}\n{rule}")
        for length in args.lengths:
            print(fmt_row(length, results[mode][length], args.cases))
    print("\n## compile time (s)\n")
    print("| mode | L | " + " | ".join(args.cases) + " |")
    print("|:---|---:|" + "---:|" * len(args.cases))
    for mode in args.modes:
        for length in args.lengths:
            cells = compiles[mode][length]
            print(f"| {mode} | {length} | " + " | ".join(
                f"{cells[m]:.2f}" if isinstance(cells[m], float) else str(cells[m])
                for m in args.cases) + " |")
    peak = peaks()
    for mode in args.modes:
        rows = []
        for length in args.lengths:
            for name in args.cases:
                t = results[mode][length][name]
                if not isinstance(t, float):
                    continue
                work = (s5_work(args.batch, length, args.heads, args.s5_state // 2)
                        if name.startswith("s5") else
                        s4d_work(args.batch, length, args.heads, args.state // 2,
                                 "conv" if name.endswith("conv") else "recurrent"))
                rows.append(roofline_row(f"{name} L={length}", t, work, peak,
                                         mode != "forward"))
        print_roofline(rows, peak, mode)
    print()
    for mode in args.modes:
        for prefix in ("s4d", "s5"):
            pair = [f"{prefix}-assoc", f"{prefix}-seq"]
            if all(p in args.cases for p in pair):
                ratios = [results[mode][L][pair[0]] / results[mode][L][pair[1]]
                          for L in args.lengths if all(isinstance(results[mode][L][p], float)
                                                       for p in pair)]
                print(f"{mode} {prefix}: associative / sequential time = "
                      + ", ".join(f"{r:.2f}" for r in ratios) + f" (L = {args.lengths})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
