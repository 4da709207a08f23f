"""``python -m ssm_jax.experiments.publish``: docs/results and the README's Results section
from reproduce workdirs (first source wins per experiment; scales said; nothing typed by hand)."""

from __future__ import annotations

import json
import os

import pytest

from ssm_jax.experiments import publish
from ssm_jax.experiments.claims import Claim, claims_table, write_claims
from tests.experiments.conftest import REPO


def experiment(root, paper, name, scale, verdicts, figure=True):
    folder = root / f"paper{paper}" / name
    folder.mkdir(parents=True)
    evidence = ("table.csv", "figure.png") if figure else ("table.csv",)
    (folder / "table.csv").write_text(f"scale,{scale}\n")
    if figure:
        (folder / "figure.png").write_bytes(b"\x89PNG " + scale.encode())
    (folder / "runs").mkdir()  # run folders are not evidence: never copied
    claims = [Claim(paper, name, f"{name} claim {i}", "no number", f"{scale} value {i}", v,
                    "a rule", evidence) for i, v in enumerate(verdicts)]
    write_claims(str(folder), claims, scale)


README = "# project\n\nintro\n\n{}\nold text 0.123\n{}\n\n## After\n".format(publish.BEGIN, publish.END)


@pytest.fixture
def sources(tmp_path):
    cpu, quick = tmp_path / "cpu", tmp_path / "quick"
    experiment(cpu, 1, "gen_gap", "cpu", ["reproduced", "inconclusive"])
    experiment(quick, 1, "gen_gap", "quick", ["not reproduced"])
    experiment(quick, 2, "delta_sweep", "quick", ["not reproduced", "reproduced", "inconclusive"])
    readme = tmp_path / "README.md"
    readme.write_text(README)
    return cpu, quick, readme


def test_the_first_source_wins_and_the_report_says_which_scale(sources, tmp_path):
    cpu, quick, readme = sources
    out = tmp_path / "docs" / "results"
    assert publish.main([str(cpu), str(quick), "--out", str(out), "--readme", str(readme)]) == 0
    gen_gap, delta = out / "paper1" / "gen_gap", out / "paper2" / "delta_sweep"
    assert json.loads((gen_gap / "claims.json").read_text())["scale"] == "cpu"
    assert (gen_gap / "table.csv").read_text() == "scale,cpu\n"
    assert json.loads((delta / "claims.json").read_text())["scale"] == "quick"
    assert not (gen_gap / "runs").exists()
    report = (out / "REPORT.md").read_text()
    assert "### gen_gap (scale `cpu`)" in report and "### delta_sweep (scale `quick`)" in report
    assert f"| 1 | gen_gap | `cpu` | `{cpu}` |" in report
    assert f"| 2 | delta_sweep | `quick` | `{quick}` |" in report
    assert "| 3 | length_independence | not run | - |" in report  # the plan's others: missing
    assert "**Summary:** 5 claims: 2 reproduced, 1 not reproduced, 2 inconclusive" in report
    assert "**Partial:**" in report and "paper3/length_independence" in report
    text = readme.read_text()
    assert "old text 0.123" not in text and text.startswith("# project\n\nintro\n\n")
    assert text.endswith(f"{publish.END}\n\n## After\n")
    assert ("| consistent (reconstruction check) |\n|---|---|---|---|---|---|\n"
            "| 1 | 2 | 1 | 0 | 1 | 0 |\n| 2 | 3 | 1 | 1 | 1 | 0 |\n") in text  # one table
    assert "(docs/results/paper1/gen_gap) (`cpu`) | gen_gap claim 0 | **reproduced** |" in text
    assert "delta_sweep claim 1" not in text  # only the first claim of each experiment
    assert "![paper 1 gen_gap](docs/results/paper1/gen_gap/figure.png)" in text
    assert "![paper 2 delta_sweep](docs/results/paper2/delta_sweep/figure.png)" in text
    assert "Not run yet:" in text and "paper 3 length_independence" in text


def test_a_rerun_drops_what_is_no_longer_published(sources, tmp_path):
    cpu, quick, readme = sources
    out = tmp_path / "out"
    publish.publish([str(cpu), str(quick)], str(out), str(readme))
    publish.publish([str(cpu)], str(out), str(readme))
    assert not (out / "paper2").exists()
    section = readme.read_text().split(publish.BEGIN)[1]
    assert "delta_sweep claim" not in section and "paper 2 delta_sweep" in section  # not run


def test_bad_input_is_one_line_and_changes_nothing(sources, tmp_path, capsys):
    cpu, quick, readme = sources
    out = tmp_path / "out"
    publish.publish([str(cpu)], str(out), str(readme))
    before = (out / "REPORT.md").read_text()
    (quick / "paper2" / "delta_sweep" / "figure.png").unlink()
    assert publish.main([str(quick), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "figure.png missing" in err
    assert (out / "REPORT.md").read_text() == before and (out / "paper1" / "gen_gap").is_dir()
    assert publish.main([str(out / "paper1"), "--out", str(out)]) == 2
    assert "lies in --out" in capsys.readouterr().err
    assert publish.main([str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "plain.md").write_text("no markers\n")
    fresh = tmp_path / "fresh"
    assert publish.main([str(cpu), "--out", str(fresh), "--readme", str(tmp_path / "plain.md")]) == 2
    assert "needs one" in capsys.readouterr().err and not fresh.exists()  # checked first
    # a reproduce workdir is never rewritten (a typo in --out must not delete runs)
    assert publish.main([str(quick), "--out", str(cpu)]) == 2
    assert "holds a reproduction" in capsys.readouterr().err
    assert (cpu / "paper1" / "gen_gap" / "runs").is_dir() and (cpu / "paper1" / "gen_gap" / "claims.json").exists()


def test_the_committed_results_are_what_publish_writes():
    """The README's Results section and docs/results/REPORT.md were generated from the committed
    claims.json files, not edited by hand; every figure they show is committed."""
    out = os.path.join(REPO, "docs", "results")
    published = publish.found([out])
    assert published, "docs/results holds no claims.json (run `make results`)"
    missing = [key for key in publish.planned() if key not in published]
    readme = open(os.path.join(REPO, "README.md")).read()
    section = readme.split(publish.BEGIN + "\n")[1].split("\n" + publish.END)[0]
    assert section == publish.results_section(published, missing, out, REPO)
    report = open(os.path.join(out, "REPORT.md")).read()
    for (paper, name), (_, scale, claims) in published.items():
        assert f"### {name} (scale `{scale}`)\n\n{claims_table(claims)}" in report
        for c in claims:
            for e in c.evidence:
                assert os.path.isfile(os.path.join(out, f"paper{paper}", name, e)), e
