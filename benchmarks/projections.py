#!/usr/bin/env python
"""Real-arithmetic projections: today's S5 and S4D-recurrent layers against the complex-einsum
versions they replaced, side by side in one process, with roofline fractions.

The baseline is the previous forward pass, kept here: the input map ``B_bar u`` and the
read-out ``Re(C x)`` as complex products of real features (the input cast to complex), as in
lindermanlab/S5. The new layers compute both as real products of stacked real and imaginary
parts (``ssm_jax.kernels.projections``); the recurrence is the same. Same parameters, same
inputs; the outputs agree to float32 tolerance (printed).

Usage: python benchmarks/projections.py [--quick] [--batch 16 --length 1024 --heads 128 --state 64]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp

from roofline import peaks, print_roofline, roofline_row, s4d_work, s5_work
from ssm_jax.kernels import discretize, linear_recurrence
from ssm_jax.layers import S4D, S5


def s5_baseline(layer, variables, u):
    """The S5 forward pass before real-arithmetic projections (complex einsums)."""
    p = variables["params"]
    Lambda_bar, B_factor = discretize(p["Lambda_re"] + 1j * p["Lambda_im"], jnp.exp(p["log_step"]))
    B_bar = B_factor[:, None] * (p["B"][..., 0] + 1j * p["B"][..., 1])
    Bu = jnp.einsum("blh,ph->blp", u.astype(B_bar.dtype), B_bar)
    x = jax.vmap(lambda b: linear_recurrence(Lambda_bar, b, method=layer.scan_method))(Bu)
    C = p["C"][..., 0] + 1j * p["C"][..., 1]
    return p["D"] * u + 2.0 * jnp.einsum("blp,hp->blh", x, C).real


def s4d_baseline(layer, variables, u):
    """The S4D recurrent forward pass before real-arithmetic input and read-out."""
    p = variables["params"]
    step = jnp.exp(p["log_step"])[:, None]
    Lambda_bar, B_factor = discretize(p["Lambda_re"] + 1j * p["Lambda_im"], step)
    B_bar = B_factor * (p["B_re"] + 1j * p["B_im"])
    C = p["C_re"] + 1j * p["C_im"]

    def one(x):  # (L, H)
        h = linear_recurrence(Lambda_bar, B_bar[None] * x[:, :, None], method=layer.scan_method)
        return 2.0 * jnp.sum(h * C, axis=-1).real

    return jax.vmap(one)(u) + p["D"] * u


def timed(fn, args, repeats):
    compiled = jax.jit(fn).lower(*args).compile()
    jax.block_until_ready(compiled(*args))
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def forward_backward(apply):
    return jax.value_and_grad(lambda v, u: jnp.mean(apply(v, u) ** 2))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="batch 2, L=256, H=16, state 16, 2 repeats")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--length", type=int, default=1024)
    p.add_argument("--heads", type=int, default=128)
    p.add_argument("--state", type=int, default=64, help="S5 P and S4D N (conj_sym: half stored)")
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.length, args.heads, args.state, args.repeats = 2, 256, 16, 16, 2
    B, L, H, M = args.batch, args.length, args.heads, args.state // 2
    print("# real-arithmetic projections vs complex einsums (previous implementation)")
    print(f"backend {jax.default_backend()}, jax {jax.__version__}; batch={B}, L={L}, H={H}, "
          f"state {args.state} ({M} complex modes), float32; median of {args.repeats} calls"
          + (f"; load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""))
    peak = peaks()
    key = jax.random.key(0)
    u = jax.random.normal(key, (B, L, H), jnp.float32)
    cases = [
        ("S5 (sequential scan)", S5(features=H, d_state=args.state, scan_method="sequential"),
         s5_baseline, s5_work(B, L, H, M)),
        ("S4D recurrent (sequential scan)",
         S4D(features=H, d_state=args.state, mode="recurrent", scan_method="sequential"),
         s4d_baseline, s4d_work(B, L, H, M, "recurrent")),
    ]
    print("\n| layer | pass | previous ms | now ms | speed-up | max abs diff of y |")
    print("|:---|:---|---:|---:|---:|---:|")
    roof = []
    for name, layer, baseline, work in cases:
        v = layer.init(key, u[:1, :8])
        new_fn = lambda v, u, layer=layer: layer.apply(v, u)
        old_fn = lambda v, u, layer=layer, f=baseline: f(layer, v, u)
        diff = float(jnp.max(jnp.abs(jax.jit(new_fn)(v, u) - jax.jit(old_fn)(v, u))))
        for pass_name, wrap in (("forward", lambda f: f), ("forward+backward", forward_backward)):
            t_old = timed(wrap(old_fn), (v, u), args.repeats)
            t_new = timed(wrap(new_fn), (v, u), args.repeats)
            print(f"| {name} | {pass_name} | {1e3 * t_old:.1f} | {1e3 * t_new:.1f} | "
                  f"{t_old / t_new:.2f}x | {diff:.2e} |", flush=True)
            backward = pass_name != "forward"
            roof.append(roofline_row(f"{name}, {pass_name}, previous", t_old, work, peak, backward))
            roof.append(roofline_row(f"{name}, {pass_name}, now", t_new, work, peak, backward))
    print_roofline(roof, peak, "same work model for both versions (the needed arithmetic)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
