"""Paper 1, experiment 1: is the output scale at initialization robust to the temporal pattern
of the input with the initialization scaling rule (8)?

    python -m experiments.paper1.output_scale --config configs/paper1/output_scale.py[:cpu]

For each depth, init seed and input pattern (``configs/paper1/output_scale.py``): initialize a
regression ``SequenceModel`` (pooling "last"), apply each rule ("none" = standard init,
"paper" / "covariance" = ``rescale_init`` with that measure, on a batch of the pattern), and
measure on an independent batch of the same pattern

* ``ssm``: RMS over batch and channels of the final-time output of the last SSM layer's
  convolution, ``y(T) = sum_s K[L-1-s] u(s)`` (the quantity the paper's theory bounds; the
  layer's skip term ``D u`` is left out),
* ``out``: RMS of the model output (the regression head after the residual blocks).

Writes ``table.csv`` / ``table.md`` (per pattern, mean ± std over seeds), ``spread.csv``
(spread over patterns: max/min ratio and std of log10 of the scale), ``raw.csv`` (every seed),
``output_scale.png`` and ``config.json`` to ``results/paper1/<experiment.name>/``.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common

QUANTITIES = {"ssm": "last SSM layer, final-time output y(T)", "out": "model output"}


def check_experiment(e) -> None:
    from ssm_jax.bound import MEASURES

    common.check_names("experiment.rules", e.rules, ("none",) + tuple(MEASURES))
    common.check_names("experiment.patterns", e.patterns, tuple(e.pattern_specs.keys()), "defined")
    if not e.depths or min(e.depths) < 1:
        raise common.ConfigError(f"experiment.depths must be positive ints, got {e.depths}")
    if e.num_seeds < 1 or e.rescale_batch < 2 or e.eval_batch < 1:
        raise common.ConfigError("experiment.num_seeds >= 1, rescale_batch >= 2, eval_batch >= 1")


def sample_pattern(data_cfg, spec, num: int, seed) -> np.ndarray:
    """``(num, L, C)`` inputs of one pattern: the data section's process keys overlaid with
    the pattern's."""
    from ssm_jax.data import dataset_defaults
    from ssm_jax.data.synthetic import sample_process

    params = {**dataset_defaults("synthetic_regression"), **data_cfg.to_dict(), **spec.to_dict()}
    return sample_process(params["process"], num, params["seq_len"], params["in_channels"],
                          seed=seed, params=params)


def make_scale_fn(model):
    """Jitted ``(variables, x) -> (ssm RMS, output RMS)`` (see the module docstring)."""
    from ssm_jax.bound import collect_layers

    @jax.jit
    def scales(variables, x):
        out, state = model.apply(variables, x, train=False, mutable=["intermediates"])
        last = collect_layers(state["intermediates"])[-1]
        k = last.final_kernel[:, ::-1]  # k[h, s] = K[h, L-1-s]
        y_final = jnp.einsum("hs,bsh->bh", k, last.input)
        return jnp.sqrt(jnp.mean(y_final ** 2)), jnp.sqrt(jnp.mean(out ** 2))

    return scales


def measure(cfg) -> list:
    """One row per (depth, seed, pattern, rule) with the two RMS scales."""
    from tqdm import tqdm

    from ssm_jax.bound import rescale_init
    from ssm_jax.data import DatasetInfo
    from ssm_jax.training.loop import build_model

    e = cfg.experiment
    base = common.trainer_configs(cfg)["main"]
    info = DatasetInfo(name="synthetic_regression", seq_len=base.data.seq_len,
                       input_kind="floats", vocab_size=None,
                       in_channels=base.data.get("in_channels", 1), num_classes=None)
    jobs = [(d, s, p) for d in e.depths for s in common.seeds(cfg) for p in e.patterns]
    rows, models = [], {}
    for depth, seed, pattern in tqdm(jobs, desc="output_scale", unit="case", dynamic_ncols=True):
        if depth not in models:
            model_cfg = common.run_config(base, **{"model.n_layers": depth}).model
            model = build_model(model_cfg, info)
            models[depth] = (model, make_scale_fn(model))
        model, scales = models[depth]
        k = list(e.pattern_specs.keys()).index(pattern)
        spec = e.pattern_specs[pattern]
        x_rule = sample_pattern(base.data, spec, e.rescale_batch, (seed, k, 0))
        x_eval = sample_pattern(base.data, spec, e.eval_batch, (seed, k, 1))
        variables = jax.jit(model.init)(jax.random.PRNGKey(seed), x_rule[:2])
        for rule in e.rules:
            v = variables if rule == "none" else rescale_init(model, variables, x_rule, measure=rule)
            ssm, out = jax.device_get(scales(v, x_eval))
            rows.append(dict(depth=depth, seed=seed, pattern=pattern, rule=rule,
                             ssm=float(ssm), out=float(out)))
    return rows


def aggregate(cfg, raw: list) -> tuple:
    """Per (depth, pattern): mean/std over seeds per quantity and rule; spread over patterns."""
    e = cfg.experiment
    table, spread = [], []
    for depth in e.depths:
        for pattern in e.patterns:
            row = dict(depth=depth, pattern=pattern,
                       process=e.pattern_specs[pattern].process)
            for q in QUANTITIES:
                for rule in e.rules:
                    vals = [r[q] for r in raw if (r["depth"], r["pattern"], r["rule"]) ==
                            (depth, pattern, rule)]
                    row[f"{q}_{rule}"], row[f"{q}_{rule}_std"] = common.mean_std(vals)
            table.append(row)
        for q in QUANTITIES:
            for rule in e.rules:
                vals = np.array([r[f"{q}_{rule}"] for r in table if r["depth"] == depth])
                logs = np.log10(vals)
                spread.append(dict(depth=depth, quantity=q, rule=rule, min=float(vals.min()),
                                   max=float(vals.max()), max_over_min=float(vals.max() / vals.min()),
                                   std_log10=float(logs.std()) if len(vals) > 1 else 0.0))
    return table, spread


def plot(cfg, table: list, raw: list, path: str) -> str:
    """Grouped bars (seed means, log y) with min-max over seeds as error bars."""
    e = cfg.experiment
    plt = common.pyplot()
    depths, rules, patterns = list(e.depths), list(e.rules), list(e.patterns)
    fig, axes = plt.subplots(len(QUANTITIES), len(depths), squeeze=False,
                             figsize=(max(5.0, 0.9 * len(patterns)) * len(depths), 3.6 * len(QUANTITIES)))
    width = 0.8 / len(rules)
    x = np.arange(len(patterns))
    for i, (q, label) in enumerate(QUANTITIES.items()):
        for j, depth in enumerate(depths):
            ax = axes[i][j]
            rows = {r["pattern"]: r for r in table if r["depth"] == depth}
            for r_i, rule in enumerate(rules):
                means = np.array([rows[p][f"{q}_{rule}"] for p in patterns])
                seeds = [[r[q] for r in raw if (r["depth"], r["pattern"], r["rule"]) ==
                          (depth, p, rule)] for p in patterns]
                low = means - np.array([min(v) for v in seeds])
                high = np.array([max(v) for v in seeds]) - means
                ax.bar(x + (r_i - (len(rules) - 1) / 2) * width, means, width,
                       yerr=[low, high], capsize=2,
                       label="no rule" if rule == "none" else f"rule ({rule})")
            ax.set_yscale("log")
            ax.set_xticks(x)
            ax.set_xticklabels(patterns, rotation=35, ha="right", fontsize=8)
            ax.set_title(f"{depth}-layer S4D: {label}", fontsize=10)
            ax.set_ylabel("RMS at initialization")
            ax.grid(axis="y", alpha=0.3)
            if i == 0 and j == 0:
                ax.legend(fontsize=8)
    fig.suptitle(f"Output scale at initialization per input pattern (L={cfg.data.seq_len}; "
                 f"mean over {e.num_seeds} init seeds, bars: min-max)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write(cfg, directory: str, raw: list, elapsed: float) -> list:
    e = cfg.experiment
    table, spread = aggregate(cfg, raw)
    value_cols = [f"{q}_{rule}{s}" for q in QUANTITIES for rule in e.rules for s in ("", "_std")]
    common.write_csv(os.path.join(directory, "table.csv"), table,
                     ["depth", "pattern", "process"] + value_cols)
    common.write_csv(os.path.join(directory, "spread.csv"), spread,
                     ["depth", "quantity", "rule", "min", "max", "max_over_min", "std_log10"])
    common.write_csv(os.path.join(directory, "raw.csv"), raw,
                     ["depth", "seed", "pattern", "rule", "ssm", "out"])
    md_rows = []
    for r in table:
        md = dict(depth=r["depth"], pattern=r["pattern"])
        for q in QUANTITIES:
            for rule in e.rules:
                md[f"{q}_{rule}"] = common.pm(r[f"{q}_{rule}"], r[f"{q}_{rule}_std"])
        md_rows.append(md)
    cols = ["depth", "pattern"] + [f"{q}_{rule}" for q in QUANTITIES for rule in e.rules]
    heads = ["depth", "pattern"] + [f"{q} ({rule})" for q in QUANTITIES for rule in e.rules]
    png = plot(cfg, table, raw, os.path.join(directory, "output_scale.png"))
    sections = [
        f"# Output scale at initialization ({e.name})",
        f"RMS at initialization on an independent batch of {e.eval_batch} sequences of length "
        f"{cfg.data.seq_len}; mean ± std over {e.num_seeds} init seeds. `ssm`: final-time output "
        "y(T) = sum_s K[L-1-s] u(s) of the last SSM layer (no D term); `out`: model output. "
        "Rules: `none` = standard S4D init; `paper` / `covariance` = `rescale_init` with that "
        f"measure on a separate batch of {e.rescale_batch} sequences of the same pattern.",
        common.markdown_table(md_rows, cols, heads),
        "## Spread over patterns (of the seed means)",
        common.markdown_table(spread, ["depth", "quantity", "rule", "min", "max", "max_over_min",
                                       "std_log10"]),
        f"Wall-clock: {elapsed:.0f} s. Figure: `{os.path.basename(png)}`.",
    ]
    common.write_markdown(os.path.join(directory, "table.md"), sections)
    return [png]


def main(argv=None) -> None:
    args, overrides = common.parse_args("output_scale", argv, __doc__.splitlines()[0])
    cfg = common.load_experiment_config(args.config, overrides)
    check_experiment(cfg.experiment)
    directory = common.out_dir(args, cfg)
    common.save_config(cfg, directory)
    common.enable_compilation_cache()
    start = time.perf_counter()
    raw = measure(cfg)
    write(cfg, directory, raw, time.perf_counter() - start)
    print(f"wrote {directory}/table.md, table.csv, spread.csv, raw.csv, output_scale.png")
    with open(os.path.join(directory, "table.md")) as f:
        print(f.read())


if __name__ == "__main__":
    raise SystemExit(common.main_guard(main))
