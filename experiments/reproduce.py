"""``ssm-jax reproduce --paper 1|2|3|all --scale quick|cpu|paper [--workdir DIR]``.

Runs the experiments of the chosen papers at one scale in ``DIR/paper<N>/<experiment>/``
(finished runs are reused, interrupted ones resume from their checkpoints) under one progress
bar with an ETA over the whole plan, and writes ``DIR/REPORT.md``: per paper, the table
``claim | paper | ours | verdict`` with each verdict's rule, and links to the tables and
figures. The report is rebuilt from every ``claims.json`` under ``DIR``, so running the papers
one at a time adds to it.

With ``--launcher submitit`` (:func:`on_cluster`) the units of the plan are sent as jobs of a
SLURM array instead (:mod:`ssm_jax.experiments.launcher`).

Experiments are found, not listed: every module of ``experiments/paper<N>/`` that defines
``PAPER`` and ``claims`` (see :mod:`ssm_jax.experiments.runner`).
"""

from __future__ import annotations

import datetime
import glob
import importlib
import json
import os
import pkgutil
import sys
import time

from ssm_jax.experiments import runner
from ssm_jax.experiments.claims import claims_table, read_claims, verdict_counts
from ssm_jax.experiments.config import applicable
from ssm_jax.files import write_json_atomic

PAPERS = {
    1: "Liu & Li, *From Generalization Analysis to Optimization Designs for State Space Models* "
       "(ICML 2024)",
    2: "Liu & Li, *Autocorrelation Matters: Understanding the Role of Initialization Schemes for "
       "State Space Models* (ICLR 2025)",
    3: "Honarpisheh et al., *Generalization Error Analysis for Selective State-Space Models "
       "Through the Lens of Attention* (NeurIPS 2025)",
}
SCALES = ("quick", "cpu", "paper")


def experiment_modules(paper: int) -> list:
    """The experiment modules of ``experiments/paper<paper>/``, in name order (an ``ORDER``
    attribute sorts first)."""
    try:
        package = importlib.import_module(f"ssm_jax.experiments.paper{paper}")
    except ModuleNotFoundError:
        return []
    mods = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        if getattr(module, "PAPER", None) == paper and callable(getattr(module, "claims", None)):
            mods.append(module)
    return sorted(mods, key=lambda m: (getattr(m, "ORDER", 100), runner.module_name(m)))


def _papers(papers) -> list:
    if papers in ("all", None):
        return sorted(PAPERS)
    if isinstance(papers, (int, str)):
        papers = [papers]
    out = []
    for p in papers:
        if str(p) not in map(str, PAPERS):
            raise ValueError(f"unknown paper {p!r}; valid: 1, 2, 3, all")
        out.append(int(p))
    return out


def plan_of(papers="all", scale: str = "quick", workdir: str = "results/reproduce",
            only: str | None = None, overrides=()) -> tuple:
    """``(plan, units)``: the experiments to run (``[(paper, module, exp, directory)]``) and
    the units of work of each, after every check that can fail (scale of the workdir, configs,
    overrides, data, run directories), before any compute; records the scale in ``plan.json``.

    ``overrides`` (``KEY=VALUE``, as ``--config.KEY=VALUE``) apply to every experiment of the
    plan whose config has the key (:func:`~ssm_jax.experiments.config.applicable`); one that
    no experiment has is an error.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; valid names: {', '.join(SCALES)}")
    check_scale(workdir, scale)
    wanted = set(only.split(",")) if only else None
    plan, used = [], set()
    for paper in _papers(papers):
        for module in experiment_modules(paper):
            name = runner.module_name(module)
            if wanted is not None and name not in wanted:
                continue
            directory = os.path.join(workdir, f"paper{paper}", name)
            mine = applicable(f"{runner.config_path(module)}:{scale}", module.Settings, overrides)
            used.update(mine)
            exp = runner.placed(runner.load_module_config(module, scale, mine), directory)
            plan.append((paper, module, exp, directory))
    if wanted is not None:
        missing = wanted - {runner.module_name(m) for _, m, _, _ in plan}
        if missing:
            raise ValueError(f"unknown experiment(s) {sorted(missing)} for paper(s) {papers}")
    if not plan:
        raise ValueError(f"no experiment found for paper(s) {papers}")
    unused = [item for item in overrides if item not in used]
    if unused:
        raise ValueError(f"override --config.{unused[0]} matches no key of any experiment in "
                         f"the plan ({', '.join(runner.module_name(m) for _, m, _, _ in plan)})")
    units = [module.prepare(exp, directory) for _, module, exp, directory in plan]
    os.makedirs(workdir, exist_ok=True)
    write_json_atomic(os.path.join(workdir, PLAN_FILE), {"scale": scale})
    return plan, units


def reproduce(papers="all", scale: str = "quick", workdir: str = "results/reproduce",
              only: str | None = None, overrides=()) -> str:
    """Run the plan (:func:`plan_of`) in this process and write ``workdir/REPORT.md``; returns
    its path."""
    from tqdm import tqdm

    plan, units = plan_of(papers, scale, workdir, only, overrides)
    bar = tqdm(total=sum(len(u) for u in units), desc=f"reproduce ({scale})", unit="unit",
               dynamic_ncols=True, file=sys.stderr)
    start = time.perf_counter()
    for paper, module, exp, directory in plan:
        bar.set_description(f"paper {paper}: {runner.module_name(module)}")
        runner.run(module, exp, directory, bar)
        write_report(workdir)
    bar.close()
    return write_report(workdir, elapsed=time.perf_counter() - start)


def on_cluster(papers="all", scale: str = "quick", workdir: str = "results/reproduce",
               only: str | None = None, overrides=(), *, send: bool = True,
               gather: bool = False) -> str:
    """``reproduce --launcher submitit`` (``send``) or ``--status`` (not ``send``): find every
    unit of the plan, submit the new and failed ones as one job array
    (:mod:`~ssm_jax.experiments.launcher`), and write REPORT.md once every experiment has
    finished (``gather``: from what has, naming the rest). Returns what to print."""
    from ssm_jax.experiments import launcher

    options, overrides = launcher.parse_options(overrides)
    plan, _ = plan_of(papers, scale, workdir, only, overrides)
    rows, jobs = launcher.launch(plan, workdir, options, send=send)
    text = launcher.summary(rows, jobs, launcher.folder_of(options, workdir))
    unfinished = sorted({name for name, unit, _ in rows if unit is not None})
    if not unfinished:
        return text + f"\nevery unit has finished: wrote {write_report(workdir)}"
    if gather:
        return text + f"\nwrote {write_report(workdir, missing=unfinished)} (not finished: " \
                      f"{', '.join(unfinished)})"
    return text + ("\nrerun the same command when the jobs have finished (it resubmits failed "
                   "units and writes REPORT.md); progress: the same command with --status")


PLAN_FILE = "plan.json"


def check_scale(workdir: str, scale: str) -> None:
    """Refuse, before anything is loaded or written, a workdir that holds a reproduction at
    another scale (its ``plan.json``, or the scale in any experiment's ``claims.json``): one
    REPORT.md never mixes scales."""
    found = {}
    path = os.path.join(workdir, PLAN_FILE)
    if os.path.exists(path):
        with open(path) as f:
            found[path] = json.load(f).get("scale")
    for claims in glob.glob(os.path.join(workdir, "paper*", "*", "claims.json")):
        found[claims] = read_claims(claims)[0]
    other = {p: s for p, s in found.items() if s not in (None, scale)}
    if other:
        where, theirs = next(iter(other.items()))
        raise ValueError(f"workdir {workdir!r} holds a reproduction at scale {theirs!r} ({where}); "
                         f"--scale {scale} needs another --workdir")


def write_report(workdir: str, elapsed: float | None = None, missing=(), preface: str = "",
                 stamp: bool = True) -> str:
    """``workdir/REPORT.md`` from every ``paper<N>/<experiment>/claims.json`` under it;
    ``missing``: experiments of the plan that have not finished (listed in the report);
    ``preface``: markdown placed after the opening paragraphs; ``stamp``: say when and on
    which JAX backend (False for a report assembled from runs made elsewhere)."""
    import jax

    sections = ["# Reproduction report"]
    if stamp:
        sections.append(f"Generated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC "
                        f"by `ssm-jax reproduce` (JAX {jax.__version__}, backend {jax.default_backend()})"
                        f"{'' if elapsed is None else f'; this invocation took {elapsed:.0f} s'}.")
    sections += ["Verdicts: **reproduced** when our measurement meets the rule stated with it; "
                 "**not reproduced** when it contradicts the claim (or, where the rule names an "
                 "equivalence margin, shows no effect larger than it); **inconclusive** when the "
                 "measurement cannot decide (e.g. a confidence interval containing zero); "
                 "**consistent (reconstruction check)** when the test checks our own "
                 "reconstruction of a formula, not a claim of the paper (counted apart). "
                 "Numbers of papers 1 and 2 are reconstructions where the full text was not "
                 "available; \"no number\" means the paper gives none for this setting."]
    summary = len(sections)  # the summary line goes here, before the preface
    if preface:
        sections.append(preface)
    every = []
    for paper, title in PAPERS.items():
        files = sorted(glob.glob(os.path.join(workdir, f"paper{paper}", "*", "claims.json")))
        if not files:
            continue
        read = [(path, *read_claims(path)) for path in files]
        mine = [c for _, _, claims in read for c in claims]
        every += mine
        sections.append(f"## Paper {paper}: {title}\n\n{verdict_counts(mine)}.")
        for path, scale, claims in read:
            folder = os.path.dirname(path)
            name = os.path.basename(folder)
            rel = os.path.relpath(folder, workdir)
            evidence = sorted({e for c in claims for e in c.evidence})
            links = ", ".join(f"[{e}]({rel}/{e})" for e in evidence) or "-"
            sections.append(f"### {name} (scale `{scale}`)\n\n{claims_table(claims)}\n\n"
                            f"Tables and figures: {links}.")
    partial = (f" **Partial:** {len(missing)} experiment(s) of the plan have not finished: "
               f"{', '.join(missing)} (their claims are not in this report)." if missing else "")
    sections.insert(summary, f"**Summary:** {verdict_counts(every)}.{partial}")
    path = os.path.join(workdir, "REPORT.md")
    os.makedirs(workdir, exist_ok=True)
    with open(path + ".tmp", "w") as f:
        f.write("\n\n".join(sections) + "\n")
    os.replace(path + ".tmp", path)
    return path
