#!/usr/bin/env python
"""Train-step time with and without the generalization-measure regularizer (paper 1, eq. (9)).

Model: ``SequenceModel`` with S4D layers (conv mode), linear encoder, mean pooling,
classification head; inputs ``x (B, L, 1)`` float32, labels ``(B,)``. Two jitted train steps
(optax adam), identical except for the loss:

* base: ``cross_entropy(model.apply(params, x))``;
* reg:  ``cross_entropy(logits) + lambda * regularizer(intermediates)``, with the model applied
  with ``mutable=["intermediates"]`` so the regularizer reuses the kernels and layer inputs of
  the forward pass (no second forward pass).

Parameters, optimizer state and batch are jit arguments. Both steps are compiled first (times
printed), warmed up once, then timed interleaved in alternating order (base, reg, reg, base,
...) with ``block_until_ready``; the ratio is median(reg) / median(base). Also printed: XLA's flop
count of both steps (the regularizer adds O(B L H) work per layer; the kernel is computed
once in both) and the median of the paired per-round ratios.

Usage: python benchmarks/regularizer.py [--quick] [--batch 16] [--d-model 64] [--state 64]
       [--length 1024] [--layers 4] [--repeats 20]
Last line: ``regularizer overhead: <ratio>x``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import optax

from roofline import peaks, print_roofline, roofline_row
from ssm_jax.bound import regularizer
from ssm_jax.models import SequenceModel


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke-test sizes: B=4, H=16, N=16, L=256, 2 layers")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--state", type=int, default=64, help="S4D d_state N")
    p.add_argument("--length", type=int, default=1024)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--repeats", type=int, default=20, help="timed calls per variant")
    p.add_argument("--reg-lambda", type=float, default=1e-3)
    p.add_argument("--measure", default="paper", choices=("paper", "covariance"))
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.d_model, args.state, args.length, args.layers = 4, 16, 16, 256, 2
        args.repeats = min(args.repeats, 5)
    return args


def make_steps(model, tx, reg_lambda, measure):
    def cross_entropy(logits, y):
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def base_loss(params, x, y):
        return cross_entropy(model.apply({"params": params}, x), y)

    def reg_loss(params, x, y):
        logits, state = model.apply({"params": params}, x, mutable=["intermediates"])
        return cross_entropy(logits, y) + reg_lambda * regularizer(state["intermediates"], measure=measure)

    def step_for(loss_fn):
        @jax.jit
        def step(params, opt_state, x, y):
            loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss
        return step

    return {"base": step_for(base_loss), "reg": step_for(reg_loss)}


def main(argv=None):
    args = parse_args(argv)
    B, L = args.batch, args.length
    print(f"backend={jax.default_backend()} B={B} L={L} H={args.d_model} N={args.state} "
          f"layers={args.layers} lambda={args.reg_lambda} measure={args.measure}")
    model = SequenceModel(args.classes, d_model=args.d_model, n_layers=args.layers, layer="s4d",
                          ssm={"d_state": args.state}, encoder="linear",
                          projection="linear")  # the model the recorded timings measured
    kx, ky, kp = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(kx, (B, L, 1), jnp.float32)
    y = jax.random.randint(ky, (B,), 0, args.classes)
    params = jax.jit(model.init)(kp, x)["params"]
    tx = optax.adam(1e-3)
    opt_state = tx.init(params)
    steps = make_steps(model, tx, args.reg_lambda, args.measure)

    compiled, flops, traffic = {}, {}, {}
    for name, step in steps.items():
        t0 = time.perf_counter()
        compiled[name] = step.lower(params, opt_state, x, y).compile()
        cost = compiled[name].cost_analysis() or {}
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        flops[name] = cost.get("flops", float("nan"))
        traffic[name] = cost.get("bytes accessed", float("nan"))
        print(f"{name}: compile {time.perf_counter() - t0:.2f} s, XLA flops {flops[name]:.3e}")
        jax.block_until_ready(compiled[name](params, opt_state, x, y))  # warm-up
    print(f"flops ratio reg/base: {flops['reg'] / flops['base']:.3f}")

    times = {name: [] for name in steps}
    for r in range(args.repeats):
        for name in (("base", "reg") if r % 2 == 0 else ("reg", "base")):  # alternate the order
            step = compiled[name]
            t0 = time.perf_counter()
            jax.block_until_ready(step(params, opt_state, x, y))
            times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"{name}: median {1e3 * med[name]:.1f} ms  (min {1e3 * min(t):.1f}, max {1e3 * max(t):.1f}, "
              f"{len(t)} runs)")
    paired = statistics.median(r / b for r, b in zip(times["reg"], times["base"]))
    print(f"median of paired ratios reg/base: {paired:.3f}")
    # A straight-line program (conv mode, no scan): XLA's own flop and byte counts are exact.
    peak = peaks()
    print_roofline([roofline_row(f"train step, {name}", med[name], (flops[name], traffic[name]),
                                 peak, backward=False) for name in steps], peak,
                   "whole train step, XLA's flop and byte counts")
    print(f"regularizer overhead: {med['reg'] / med['base']:.3f}x")


if __name__ == "__main__":
    main()
