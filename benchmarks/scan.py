#!/usr/bin/env python
"""Speed of the three ways to run an S4D-like layer: associative scan, sequential scan, convolution.

The layer: H independent SISO diagonal SSMs with complex modes, ZOH-discretized inside the
timed function from real parameters (Lambda_re, Lambda_im, log_step, B_re, B_im, C_re, C_im),
applied to a batch u (B, L, H) float32.

* associative / sequential: ``linear_recurrence`` over the state ``x (L, B, H, n)`` complex64
  with the time-invariant ``a = Lambda_bar (H, n)`` and ``b = B_bar * u``, then
  ``y = 2 Re(sum_n C x)``.
* conv: ``K = ssm_kernel(Lambda_bar, B_bar, C, L)`` then ``causal_conv`` per sequence (vmap).

Modes: "forward" (y) and "forward+backward" (value and gradient of mean(y^2) with respect to
all parameters). Parameters and inputs are jit arguments (nothing closed over). Each cell:
compile (lower + compile, timed separately), one warm-up call, then the median of --repeats
timed calls with block_until_ready.

State size: ``--state N`` is the real state size of S4D; with conj_sym (default) the layer
keeps n = N/2 complex modes (the conjugate halves are implicit, factor 2 in y and K); with
``--no-conj-sym`` it keeps n = N complex modes.

Memory: the scans materialize the state (L, B, H, n) complex64, 8 bytes per entry; at
L=4096, B=16, H=128, n=32 that is 2.1 GB per copy, and the associative scan with its gradient
keeps several such copies (more than the 23 GB of this machine). The batch is therefore
processed in chunks of ``c`` sequences with ``lax.map`` inside the jitted function (gradient
accumulation for forward+backward), ``c`` the largest divisor of B whose state fits in
``--max-state-gb`` (default 1 GB). The same chunking is used for all three methods, so the
ratios compare like with like. The chosen chunk is printed for every length.

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
import numpy as np
from jax import lax

from ssm_jax.kernels import causal_conv, discretize, linear_recurrence, ssm_kernel

METHODS = ("associative", "sequential", "conv")
MODES = ("forward", "forward+backward")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke-test sizes: B=2, H=8, N=16, L=256, 2 repeats")
    p.add_argument("--lengths", type=int, nargs="+", default=None,
                   help="sequence lengths L (default 256 1024 4096; quick: 256)")
    p.add_argument("--batch", type=int, default=None, help="batch size B (default 16)")
    p.add_argument("--heads", type=int, default=None, help="channels H (default 128)")
    p.add_argument("--state", type=int, default=None,
                   help="real state size N per channel (default 64)")
    p.add_argument("--no-conj-sym", dest="conj_sym", action="store_false",
                   help="keep N complex modes instead of N/2 conjugate-symmetric ones")
    p.add_argument("--repeats", type=int, default=None, help="timed calls per cell (default 5)")
    p.add_argument("--cell-seconds", type=float, default=30.0,
                   help="time budget per cell: fewer repeats (at least 2) when one call is slow")
    p.add_argument("--max-state-gb", type=float, default=1.0,
                   help="memory budget for one chunk's state (L, c, H, n) complex64")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    quick = dict(lengths=[256], batch=2, heads=8, state=16, repeats=2)
    full = dict(lengths=[256, 1024, 4096], batch=16, heads=128, state=64, repeats=5)
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.conj_sym and args.state % 2:
        p.error("--state must be even with conj_sym (N/2 complex modes)")
    return args


# --------------------------------------------------------------------------- the layer
def init_params(key, H, n):
    """S4D-Lin eigenvalues, log-uniform steps, complex normal B and C; all real arrays."""
    k_step, k_b, k_c = jax.random.split(key, 3)
    Lambda = np.tile(-0.5 + 1j * np.pi * np.arange(n), (H, 1))
    log_step = jax.random.uniform(k_step, (H,), minval=np.log(1e-3), maxval=np.log(1e-1))
    B = jax.random.normal(k_b, (2, H, n)) / np.sqrt(2.0)
    C = jax.random.normal(k_c, (2, H, n)) / np.sqrt(2.0 * n)
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    return dict(Lambda_re=f32(Lambda.real), Lambda_im=f32(Lambda.imag), log_step=f32(log_step),
                B_re=f32(B[0]), B_im=f32(B[1]), C_re=f32(C[0]), C_im=f32(C[1]))


def discrete_system(params):
    Lambda = lax.complex(params["Lambda_re"], params["Lambda_im"])
    step = jnp.exp(params["log_step"])[:, None]
    Lambda_bar, B_factor = discretize(Lambda, step, method="zoh")
    B_bar = B_factor * lax.complex(params["B_re"], params["B_im"])
    C = lax.complex(params["C_re"], params["C_im"])
    return Lambda_bar, B_bar, C


def layer(params, u, method, conj_sym):
    """u (c, L, H) float32 -> y (c, L, H) float32."""
    Lambda_bar, B_bar, C = discrete_system(params)
    c = 2.0 if conj_sym else 1.0
    if method == "conv":
        K = ssm_kernel(Lambda_bar, B_bar, C, u.shape[1], conj_sym=conj_sym)
        return jax.vmap(causal_conv, in_axes=(0, None))(u, K)
    u_t = jnp.swapaxes(u, 0, 1)  # (L, c, H)
    b = B_bar * u_t[..., None].astype(B_bar.dtype)  # (L, c, H, n)
    x = linear_recurrence(Lambda_bar, b, method=method)  # a: (H, n), time-invariant
    y = c * jnp.sum(x * C, axis=-1).real  # (L, c, H); faster on CPU than a complex einsum
    return jnp.swapaxes(y, 0, 1)


def make_fn(method, mode, conj_sym):
    """Jittable f(params, u_chunks) with u_chunks (B // c, c, L, H)."""

    def forward(params, u_chunks):
        return lax.map(lambda u: layer(params, u, method, conj_sym), u_chunks)

    def loss(params, u):
        y = layer(params, u, method, conj_sym)
        return jnp.mean(y ** 2)

    def forward_backward(params, u_chunks):
        value_and_grad = jax.value_and_grad(loss)

        def body(acc, u):
            value, grads = value_and_grad(params, u)
            acc_value, acc_grads = acc
            return (acc_value + value,
                    jax.tree_util.tree_map(jnp.add, acc_grads, grads)), None

        zeros = (jnp.zeros((), jnp.float32), jax.tree_util.tree_map(jnp.zeros_like, params))
        (value, grads), _ = lax.scan(body, zeros, u_chunks)
        n = u_chunks.shape[0]
        return value / n, jax.tree_util.tree_map(lambda g: g / n, grads)

    return forward if mode == "forward" else forward_backward


# --------------------------------------------------------------------------- timing
def chunk_size(batch, length, heads, modes, max_state_gb):
    per_sequence = length * heads * modes * 8  # complex64 state of one sequence
    fits = max(1, int(max_state_gb * 1e9 // per_sequence))
    return max(d for d in range(1, batch + 1) if batch % d == 0 and d <= fits)


def time_cell(fn, args, repeats, cell_seconds):
    """(compile seconds, median run seconds, number of timed runs) or raises."""
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


def auto_choice():
    try:
        from ssm_jax.kernels import scan
    except ImportError:
        return "n/a"
    fn = getattr(scan, "auto_method", None)
    return fn() if callable(fn) else "n/a"


def fmt_row(length, cells, methods):
    ok = [v for v in cells.values() if isinstance(v, float)]
    best = min(ok) if ok else None
    out = [str(length)]
    for m in methods:
        v = cells.get(m)
        if isinstance(v, float):
            out.append(f"{v * 1e3:.1f} ({v / best:.2f}x)")
        else:
            out.append(str(v))
    fastest = min((m for m in methods if isinstance(cells.get(m), float)),
                  key=lambda m: cells[m], default="-")
    out.append(fastest)
    return "| " + " | ".join(out) + " |"


def main(argv=None):
    args = parse_args(argv)
    modes = args.state // 2 if args.conj_sym else args.state
    print("# linear_recurrence (associative | sequential) vs ssm_kernel + causal_conv")
    print(f"backend: {jax.default_backend()} ({jax.devices()[0].device_kind}), "
          f"jax {jax.__version__}, x64={'on' if jax.config.jax_enable_x64 else 'off'}")
    print(f"B={args.batch}, H={args.heads}, N={args.state} real state size -> n={modes} complex "
          f"modes per channel ({'conj_sym: N/2 modes, y = 2 Re(C x)' if args.conj_sym else 'no conj_sym: N modes, y = Re(C x)'}); "
          f"state x (L, B, H, n) complex64, input u float32")
    print(f"timing: median of {args.repeats} calls after one warm-up (fewer, at least 2, when a "
          f"cell would exceed {args.cell_seconds:g} s), ms; (ratio) to the fastest method in the "
          f"row; compile time (lower + compile) reported separately")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"host: {os.cpu_count()} CPUs" +
          (f", load average {load[0]:.1f} at start (other processes distort timings)" if load
           else ""))
    print(f'linear_recurrence(method="auto") on this backend picks: {auto_choice()}')

    key = jax.random.PRNGKey(args.seed)
    params = init_params(key, args.heads, modes)
    min_runs = args.repeats
    results = {mode: {} for mode in args.modes}
    compiles = {mode: {} for mode in args.modes}
    print()
    print("batch chunking (memory budget %.2g GB for one chunk's state):" % args.max_state_gb)
    for length in args.lengths:
        c = chunk_size(args.batch, length, args.heads, modes, args.max_state_gb)
        state_gb = args.batch * length * args.heads * modes * 8 / 1e9
        print(f"  L={length}: full-batch state {state_gb:.2f} GB -> lax.map over "
              f"{args.batch // c} chunk(s) of {c} sequence(s)")
        u = jax.random.normal(jax.random.fold_in(key, length),
                              (args.batch // c, c, length, args.heads), jnp.float32)
        for mode in args.modes:
            results[mode][length] = {}
            compiles[mode][length] = {}
            for method in args.methods:
                fn = make_fn(method, mode, args.conj_sym)
                try:
                    compile_s, run_s, n_runs = time_cell(fn, (params, u), args.repeats,
                                                         args.cell_seconds)
                    min_runs = min(min_runs, n_runs)
                    results[mode][length][method] = run_s
                    compiles[mode][length][method] = compile_s
                except Exception as exc:  # noqa: BLE001  (OOM etc.: report and go on)
                    kind = "OOM" if "RESOURCE_EXHAUSTED" in str(exc) or isinstance(
                        exc, MemoryError) else type(exc).__name__
                    results[mode][length][method] = kind
                    compiles[mode][length][method] = kind
                    print(f"  {mode} {method} L={length}: {kind}: {str(exc)[:200]}",
                          file=sys.stderr)
                print(f"  done: {mode:16s} {method:11s} L={length}: "
                      f"{results[mode][length][method] if isinstance(results[mode][length][method], str) else '%.1f ms' % (1e3 * results[mode][length][method])}",
                      flush=True)

    header = "| L | " + " | ".join(f"{m} ms (ratio)" for m in args.methods) + " | fastest |"
    rule = "|" + "---:|" * (len(args.methods) + 1) + ":---|"
    for mode in args.modes:
        print()
        print(f"## {mode}")
        print()
        print(header)
        print(rule)
        for length in args.lengths:
            print(fmt_row(length, results[mode][length], args.methods))
    print()
    print("## compile time (s)")
    print()
    print("| mode | L | " + " | ".join(args.methods) + " |")
    print("|:---|---:|" + "---:|" * len(args.methods))
    for mode in args.modes:
        for length in args.lengths:
            cells = compiles[mode][length]
            vals = [f"{cells[m]:.2f}" if isinstance(cells[m], float) else str(cells[m])
                    for m in args.methods]
            print(f"| {mode} | {length} | " + " | ".join(vals) + " |")

    print()
    print(f"fewest timed runs in any cell: {min_runs}")
    if hasattr(os, "getloadavg"):
        print(f"load average at end: {os.getloadavg()[0]:.1f}")
    scans = [m for m in ("associative", "sequential") if m in args.methods]
    if len(scans) == 2:
        print()
        for mode in args.modes:
            wins = {m: 0 for m in scans}
            for length in args.lengths:
                cells = results[mode][length]
                timed = [m for m in scans if isinstance(cells.get(m), float)]
                if timed:
                    wins[min(timed, key=lambda m: cells[m])] += 1
            print(f"{mode}: faster scan per length: " +
                  ", ".join(f"{m} {w}/{len(args.lengths)}" for m, w in wins.items()) +
                  f"; auto picks {auto_choice()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
