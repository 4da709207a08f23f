"""Claims an experiment tests, with the paper's number (where known), ours, and a verdict
from a stated rule. ``ssm-jax reproduce`` collects them into REPORT.md."""

from __future__ import annotations

import dataclasses
import json
import math
import os

from ssm_jax.files import write_json_atomic

# A claim whose test checks our own derivation (a reconstruction of a paper whose full text
# we do not have) is never called reproduced: it is "consistent" with our reconstruction.
CONSISTENT = "consistent (reconstruction check)"
VERDICTS = ("reproduced", "not reproduced", "inconclusive", CONSISTENT)
NO_NUMBER = "no number"  # the paper (or docs/theory.md) gives no value for this claim
# a value we derived (a reconstruction of a paper whose full text we do not have), not printed
# in a paper: never shown as the paper's number
RECONSTRUCTION = "no number (reconstruction)"


@dataclasses.dataclass(frozen=True)
class Claim:
    """One claim and its verdict.

    Attributes:
      paper: 1, 2 or 3.
      experiment: the experiment's name (its results folder).
      text: the claim, as the paper makes it.
      paper_value: the paper's number, or :data:`NO_NUMBER`.
      ours: what we measured (numbers, with their spread).
      verdict: one of :data:`VERDICTS`.
      rule: how ``ours`` decides the verdict (the thresholds are config values).
      evidence: files of the experiment (tables, figures) relative to its folder.
    """

    paper: int
    experiment: str
    text: str
    paper_value: str
    ours: str
    verdict: str
    rule: str
    evidence: tuple = ()

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


def interval_verdict(low: float, high: float) -> str:
    """A confidence interval of an effect whose claimed sign is positive: above 0 =
    reproduced, below 0 = not reproduced, containing 0 (or undefined) = inconclusive."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "inconclusive"
    if low > 0:
        return "reproduced"
    if high < 0:
        return "not reproduced"
    return "inconclusive"


def effect_verdict(low: float, high: float, margin: float, eq_low: float | None = None,
                   eq_high: float | None = None) -> str:
    """An effect claimed positive, with its confidence interval ``[low, high]`` and a smallest
    effect of interest ``margin`` (> 0): above 0 = reproduced; below 0 = not reproduced; the
    equivalence interval ``[eq_low, eq_high]`` (the ``1 - 2 alpha`` interval of a TOST; default
    ``[low, high]``) inside ``(-margin, margin)`` = not reproduced (no effect larger than the
    margin); else (or undefined) inconclusive."""
    verdict = interval_verdict(low, high)
    if verdict != "inconclusive":
        return verdict
    eq_low = low if eq_low is None else eq_low
    eq_high = high if eq_high is None else eq_high
    if math.isfinite(eq_low) and math.isfinite(eq_high) and -margin < eq_low and eq_high < margin:
        return "not reproduced"
    return "inconclusive"


def reconstruction_check(verdict: str) -> str:
    """The verdict of a test that checks our own reconstruction (a formula tagged reconstructed in
    ``docs/theory.md``, or what the implementation can see), not a claim the paper's text
    makes: a pass is :data:`CONSISTENT`, never "reproduced"; a failure stays "not reproduced"
    (our code and our reconstruction disagree) and inconclusive stays inconclusive."""
    return CONSISTENT if verdict == "reproduced" else verdict


def paired_effect(diffs, margin: float, confidence: float = 0.95, scale: float = 1.0,
                  unit: str = "") -> tuple:
    """Verdict of "the change improves the metric" from paired differences over seeds:
    ``(verdict, ours, rule)``. The ``confidence`` t-interval of the mean difference decides
    the sign (:func:`effect_verdict`); the ``2 confidence - 1`` interval inside ``(-margin,
    margin)`` is the two-one-sided test at level ``1 - confidence`` and shows no effect larger
    than the margin. ``scale``/``unit`` format the numbers
    (e.g. 100 and " points")."""
    from ssm_jax.experiments.tables import t_interval

    mean, low, high = t_interval(diffs, confidence)
    eq_level = 2 * confidence - 1
    _, eq_low, eq_high = t_interval(diffs, eq_level)
    n = sum(1 for d in diffs if d is not None and math.isfinite(d))
    verdict = effect_verdict(low, high, margin, eq_low, eq_high)
    ours = (f"paired {scale * mean:+.2f}{unit} [{scale * low:+.2f}, {scale * high:+.2f}] "
            f"({confidence:.0%}), [{scale * eq_low:+.2f}, {scale * eq_high:+.2f}] ({eq_level:.0%}) "
            f"over {n} seeds")
    rule = (f"{confidence:.0%} t-interval of the paired difference: above 0 = reproduced, below "
            f"0 = not reproduced; {eq_level:.0%} interval inside +-{scale * margin:g}{unit} "
            f"(equivalence margin {scale * margin:g}{unit}, TOST) = not reproduced (no effect "
            "larger than the margin); else inconclusive")
    return verdict, ours, rule


def cells_verdict(p_support, p_against, alpha: float) -> tuple:
    """One verdict for a claim tested in several cells (tasks, processes, sizes), from each
    cell's one-sided p-values for and against the claim, Holm-corrected within each family:
    ``(verdict, text)``. Reproduced: every cell supports it (Holm-adjusted p < alpha);
    not reproduced: some cell contradicts it (Holm-adjusted p < alpha), so a true null fails
    the claim with probability at most alpha, however many cells; else inconclusive."""
    from ssm_jax.experiments.stats import holm

    up, down = holm(p_support), holm(p_against)
    text = ("Holm-adjusted p for / against per cell: "
            + ", ".join(f"{u:.2g} / {d:.2g}" for u, d in zip(up, down)))
    if up and all(math.isfinite(u) and u < alpha for u in up):
        return "reproduced", text
    if any(math.isfinite(d) and d < alpha for d in down):
        return "not reproduced", text
    return "inconclusive", text


def pooled_effect(cells, margin: float, confidence: float = 0.95, scale: float = 1.0,
                  unit: str = "") -> tuple:
    """Verdict of "the change improves the metric" over several cells (processes, sizes,
    tasks), each a list of paired differences over seeds: ``(verdict, ours, rule)``.

    Each cell gives its mean and standard error; the DerSimonian-Laird random-effects estimate
    (:func:`ssm_jax.experiments.stats.random_effects`) pools them, and its normal ``confidence``
    interval decides the sign, its ``2 confidence - 1`` interval inside ``(-margin, margin)``
    shows no effect larger than the margin (:func:`effect_verdict`). One rule for both
    directions, so more cells never make one verdict likelier than the other."""
    from scipy.stats import norm

    from ssm_jax.experiments.stats import random_effects
    from ssm_jax.experiments.tables import finite

    means, ses = [], []
    for diffs in cells:
        d = finite(diffs)
        means.append(float(d.mean()) if d.size else math.nan)
        ses.append(float(d.std(ddof=1) / math.sqrt(d.size)) if d.size >= 2 else math.nan)
    pooled = random_effects(means, ses)
    m, se = pooled["mean"], pooled["se"]
    z, z_eq = norm.ppf(0.5 + confidence / 2), norm.ppf(confidence)
    low, high = m - z * se, m + z * se
    eq_low, eq_high = m - z_eq * se, m + z_eq * se
    verdict = effect_verdict(low, high, margin, eq_low, eq_high)
    eq_level = 2 * confidence - 1
    ours = (f"pooled {scale * m:+.3g}{unit} [{scale * low:+.3g}, {scale * high:+.3g}] "
            f"({confidence:.0%}), [{scale * eq_low:+.3g}, {scale * eq_high:+.3g}] ({eq_level:.0%})"
            f" over {pooled['k']} cells, between-cell variance {scale ** 2 * pooled['tau2']:.2g}")
    rule = (f"random-effects (DerSimonian-Laird) pooled paired difference over cells, each cell's "
            f"mean and standard error over seeds: {confidence:.0%} interval above 0 = "
            f"reproduced, below 0 = not reproduced; {eq_level:.0%} interval inside "
            f"+-{scale * margin:g}{unit} (equivalence margin {scale * margin:g}{unit}) = not "
            "reproduced (no effect larger than the margin); else inconclusive")
    return verdict, ours, rule


def interval_threshold_verdict(low: float, high: float, reproduced_above: float,
                               not_reproduced_below: float | None = None) -> str:
    """A threshold claim decided by a confidence (e.g. bootstrap) interval ``[low, high]`` of
    the measured value, never by the point: the whole interval above ``reproduced_above`` =
    reproduced; the whole interval below ``not_reproduced_below`` (default the same
    threshold) = not reproduced; else (or undefined) inconclusive. For a claim "below t",
    pass the negated interval and threshold."""
    below = reproduced_above if not_reproduced_below is None else not_reproduced_below
    if not (math.isfinite(low) and math.isfinite(high)):
        return "inconclusive"
    if low > reproduced_above:
        return "reproduced"
    if high < below:
        return "not reproduced"
    return "inconclusive"


def kendall_verdict(x, y, blocks, alpha: float) -> tuple:
    """Verdict of "y increases with x" from Kendall's tau within blocks (runs that share data
    and init, e.g. one seed), combined over blocks with an exact null
    (:func:`ssm_jax.experiments.stats.blocked_kendall`): ``(verdict, ours, result)``. One-sided
    p < alpha for = reproduced, against = not reproduced, else inconclusive."""
    from ssm_jax.experiments.stats import blocked_kendall

    r = blocked_kendall(x, y, blocks)
    verdict = ("reproduced" if r["p_greater"] < alpha else
               "not reproduced" if r["p_less"] < alpha else "inconclusive")
    null = "exact null" if r["exact"] else "within-block permutation null"
    ours = (f"Kendall tau {r['tau']:+.2f} within {r['blocks']} blocks ({r['pairs']} pairs), "
            f"one-sided p {r['p_greater']:.2g} ({null})")
    return verdict, ours, r


def verdict_counts(claims) -> str:
    """``"N claims: a reproduced, b not reproduced, c inconclusive, d consistent
    (reconstruction check)"`` (the report's summary line; the four are counted apart)."""
    claims = list(claims)
    counts = ", ".join(f"{sum(c.verdict == v for c in claims)} {v}" for v in VERDICTS)
    return f"{len(claims)} claims: {counts}"


def threshold_verdict(value: float, reproduced_if, not_reproduced_if) -> str:
    """``reproduced_if(value)`` / ``not_reproduced_if(value)`` (predicates), else
    inconclusive; NaN is inconclusive."""
    if value is None or not math.isfinite(value):
        return "inconclusive"
    if reproduced_if(value):
        return "reproduced"
    if not_reproduced_if(value):
        return "not reproduced"
    return "inconclusive"


def all_verdict(verdicts) -> str:
    """One verdict for a claim tested in several settings: reproduced only if reproduced in
    every one, not reproduced if not reproduced in any, else inconclusive."""
    verdicts = list(verdicts)
    if verdicts and all(v == "reproduced" for v in verdicts):
        return "reproduced"
    if any(v == "not reproduced" for v in verdicts):
        return "not reproduced"
    return "inconclusive"


def write_claims(directory: str, claims, scale: str | None = None) -> str:
    """``directory/claims.json``: the claims of one experiment run (read by the report)."""
    path = os.path.join(directory, "claims.json")
    payload = {"scale": scale, "claims": [dataclasses.asdict(c) for c in claims]}
    return write_json_atomic(path, payload)


def read_claims(path: str) -> tuple:
    """``(scale, [Claim])`` from a claims.json."""
    with open(path) as f:
        payload = json.load(f)
    claims = [Claim(**{**c, "evidence": tuple(c.get("evidence", ()))}) for c in payload["claims"]]
    return payload.get("scale"), claims


def claims_table(claims) -> str:
    """Markdown table ``claim | paper | ours | verdict`` (the rule under the verdict)."""
    lines = ["| claim | paper | ours | verdict |", "|---|---|---|---|"]
    for c in claims:
        cell = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {cell(c.text)} | {cell(c.paper_value)} | {cell(c.ours)} | "
                     f"**{c.verdict}** ({cell(c.rule)}) |")
    return "\n".join(lines)
