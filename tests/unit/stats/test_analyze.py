"""``udf analyze`` (the contract §5): fields, numbers, stdin, degenerate rows and errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats as sps

SUMMARY = "group,n,sum,sum_sq\ncontrol,1000,500,800\ntreatment,1000,560,900\nb,1200,590,1000\n"
FIELDS = [
    "group",
    "lift_abs",
    "lift_rel",
    "ci_low",
    "ci_high",
    "rel_ci_low",
    "rel_ci_high",
    "p_value",
]


def run(cli_main, args: list[str], stdin: str | bytes = ""):
    return CliRunner(env={"COLUMNS": "200"}).invoke(cli_main, ["analyze", *args], input=stdin)


def test_json_has_exactly_the_contract_fields_and_scipy_numbers(cli_main) -> None:
    result = run(cli_main, ["--summary", "-", "--format", "json", "--alpha", "0.1"], SUMMARY)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["group"] for r in rows] == ["treatment", "b"]
    for row, (n, s, ss) in zip(rows, [(1000, 560, 900), (1200, 590, 1000)], strict=True):
        assert list(row) == FIELDS
        m_c, v_c = 0.5, (800 - 500**2 / 1000) / 999
        m_t, v_t = s / n, (ss - s**2 / n) / (n - 1)
        ref = sps.ttest_ind_from_stats(
            m_t, np.sqrt(v_t), n, m_c, np.sqrt(v_c), 1000, equal_var=False
        )
        assert row["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
        assert row["lift_abs"] == pytest.approx(m_t - m_c)
        assert row["lift_rel"] == pytest.approx(m_t / m_c - 1)
        # Both intervals: centre +- t quantile at the Welch df (alpha 0.1, not the default)
        # times the standard error; the relative one with the delta-method standard error.
        a, b = v_c / 1000, v_t / n
        se = np.sqrt(a + b)
        df = (a + b) ** 2 / (a**2 / 999 + b**2 / (n - 1))
        rel_se = np.sqrt(v_t / (n * m_c**2) + v_c * m_t**2 / (1000 * m_c**4))
        q = sps.t.ppf(1 - 0.1 / 2, df)
        assert q > sps.norm.ppf(0.95)  # a t quantile, not the normal one
        for low, high, centre, width in (
            ("ci_low", "ci_high", "lift_abs", q * se),
            ("rel_ci_low", "rel_ci_high", "lift_rel", q * rel_se),
        ):
            assert (row[high] - row[low]) / 2 == pytest.approx(width, rel=1e-9)
            assert (row[high] + row[low]) / 2 == pytest.approx(row[centre], rel=1e-9)


def test_file_input_and_table_output(cli_main, tmp_path) -> None:
    path = tmp_path / "summary.csv"
    path.write_text(SUMMARY)
    result = run(cli_main, ["--summary", str(path), "--home", str(tmp_path)])
    assert result.exit_code == 0 and "treatment" in result.output and "p_value" in result.output


def test_degenerate_groups_get_a_status_and_nulls(cli_main) -> None:
    text = "group,n,sum,sum_sq\ncontrol,10,0,0\nsingle,1,1,1\nempty,0,0,0\nsome,10,5,5\n"
    rows = json.loads(run(cli_main, ["--summary", "-", "--format", "json"], text).output)
    by_group = {r["group"]: r for r in rows}
    assert by_group["single"]["status"] == "too_few_units" and by_group["single"]["p_value"] is None
    assert by_group["empty"]["status"] == "empty_group" and by_group["empty"]["lift_abs"] is None
    assert by_group["some"]["status"] == "zero_control_mean"
    assert by_group["some"]["lift_rel"] is None and by_group["some"]["p_value"] is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("group,n,sum\ncontrol,1,1\n", "line 1: header"),
        ("group,n,sum,sum_sq\ntreatment,10,1,1\n", "no 'control' group"),
        ("group,n,sum,sum_sq\ncontrol,10,1,1\nt,10,abc,1\n", "line 3: sum 'abc' is not a number"),
        ("group,n,sum,sum_sq\ncontrol,10,1,1\nt,10,1\n", "line 3: expected 4 cells"),
        (
            "group,n,sum,sum_sq\ncontrol,10,1,1\ncontrol,10,1,1\n",
            "line 3: group 'control' appears twice",
        ),
        ("group,n,sum,sum_sq\ncontrol,2.5,1,1\n", "line 2: n '2.5' is not a count"),
        ("group,n,sum,sum_sq\ncontrol,10,nan,1\n", "line 2: sum 'nan' is not finite"),
        # Impossible statistics: no list of numbers has them (CONTRACT §5: an error, exit 1).
        (
            "group,n,sum,sum_sq\ncontrol,10,1,1\nt,10,5,2\n",
            "line 3: sum_sq '2' is below sum^2/n = 2.5",
        ),
        ("group,n,sum,sum_sq\ncontrol,10,1,1\nt,10,5,-1\n", "line 3: sum_sq '-1' is below"),
        ("group,n,sum,sum_sq\ncontrol,-3,1,1\n", "line 2: n '-3' is not a count"),
        ("group,n,sum,sum_sq\ncontrol,10,1,1\nt,0,2,4\n", "line 3: n is 0 but sum"),
        ("group,n,sum,sum_sq\ncontrol,10,1,1\nt,1,2,5\n", "line 3: n is 1 but sum_sq"),
        ("group,n,sum,sum_sq\ncontrol,10,1,1\nt,2,1e150,1e300\n", "'t': statistics too large"),
    ],
)
def test_bad_input_is_a_one_line_error(cli_main, text: str, message: str) -> None:
    result = run(cli_main, ["--summary", "-"], text)
    assert result.exit_code == 1
    assert message in result.output and result.output.count("\n") == 1


def test_round_off_at_the_sum_sq_floor_is_accepted(cli_main) -> None:
    # Constant groups: 3.3**2/3 and 7.7**2/11 are not exactly 3.63 and 5.39 in binary.
    text = "group,n,sum,sum_sq\ncontrol,3,3.3,3.63\nt,11,7.7,5.39\none,1,0.7,0.49\n"
    result = run(cli_main, ["--summary", "-", "--format", "json"], text)
    assert result.exit_code == 0, result.output
    by_group = {r["group"]: r for r in json.loads(result.output)}
    assert by_group["t"]["status"] == "zero_variance"
    assert by_group["one"]["status"] == "too_few_units"


def test_excel_byte_order_mark_and_crlf_are_accepted(cli_main, tmp_path) -> None:
    data = b"\xef\xbb\xbf" + SUMMARY.replace("\n", "\r\n").encode()
    path = tmp_path / "excel.csv"
    path.write_bytes(data)
    expected = json.loads(run(cli_main, ["--summary", "-", "--format", "json"], SUMMARY).output)
    for args, stdin in (([str(path)], b""), (["-"], data)):
        result = run(cli_main, ["--format", "json", "--summary", *args], stdin)
        assert result.exit_code == 0, result.output
        assert json.loads(result.output) == expected


def test_non_utf8_input_is_the_same_one_line_error_from_a_file_or_stdin(cli_main, tmp_path) -> None:
    data = SUMMARY.replace("treatment", "tr\xe9atment").encode("latin-1")
    path = tmp_path / "latin1.csv"
    path.write_bytes(data)
    for source, stdin, name in ((str(path), b"", str(path)), ("-", data, "<stdin>")):
        result = run(cli_main, ["--summary", source], stdin)
        assert result.exit_code == 1
        assert f"{name}: not UTF-8 text" in result.output and result.output.count("\n") == 1


def test_missing_file_and_bad_alpha(cli_main, tmp_path) -> None:
    assert "cannot read" in run(cli_main, ["--summary", str(tmp_path / "nope.csv")]).output
    result = run(cli_main, ["--summary", "-", "--alpha", "1.5"], SUMMARY)
    assert result.exit_code == 1 and "--alpha" in result.output
