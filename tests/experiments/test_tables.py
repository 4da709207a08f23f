"""Table helpers: mean ± std, intervals, markdown and CSV."""

import pytest

from experiments import tables


def test_tables(tmp_path):
    assert tables.mean_std([1.0, 3.0]) == (2.0, pytest.approx(2 ** 0.5))
    assert tables.mean_std([2.0]) == (2.0, 0.0)
    assert tables.pm(0.12345, 0.01) == "0.123 ± 0.01"
    rows = [{"a": 1, "b": 0.5}, {"a": 2, "b": float("nan")}]
    assert tables.markdown_table(rows, ["a", "b"]) == "| a | b |\n|---|---|\n| 1 | 0.5 |\n| 2 | - |"
    path = tables.write_csv(str(tmp_path / "t.csv"), rows, ["a", "b"])
    assert open(path).read().splitlines() == ["a,b", "1,0.5", "2,nan"]


def test_t_interval_against_the_formula():
    from scipy.stats import t

    values = [1.0, 2.0, 4.0, 7.0]
    mean, lo, hi = tables.t_interval(values, 0.9)
    sd = (sum((v - 3.5) ** 2 for v in values) / 3) ** 0.5
    half = t.ppf(0.95, 3) * sd / 2
    assert (mean, lo, hi) == pytest.approx((3.5, 3.5 - half, 3.5 + half))
    assert tables.t_interval([1.0])[1] != tables.t_interval([1.0])[1]  # NaN with one value
