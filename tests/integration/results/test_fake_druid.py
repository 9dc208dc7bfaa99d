"""The fake Druid is the Druid store's test oracle: it must refuse what Druid (or the results
schema) refuses, and apply a REPLACE the way Druid does."""

from __future__ import annotations

import time
from datetime import date

import pytest
import requests

from metric_types.stores.druid_sql import replace_statement
from tests.integration.results.conftest import DATASOURCE
from tests.support.fake_druid import FakeDruid
from tests.support.result_rows import make_row, slice_of, slice_rows

DAY = (
    "\"__time\" >= TIMESTAMP '2026-01-02 00:00:00' AND \"__time\" < TIMESTAMP '2026-01-03 00:00:00'"
)


def submit(fake: FakeDruid, query: str) -> requests.Response:
    return requests.post(
        fake.url + "/druid/v2/sql/task", json={"query": query, "context": {}}, timeout=5
    )


def wait(fake: FakeDruid, task: str) -> dict:
    for _ in range(200):
        status = requests.get(f"{fake.url}/druid/indexer/v1/task/{task}/status", timeout=5).json()
        if status["status"]["statusCode"] != "RUNNING":
            return status["status"]
        time.sleep(0.02)
    raise AssertionError("task never finished")


def good() -> str:
    return replace_statement(DATASOURCE, slice_of(), slice_rows(), carry_over=False)


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        (good().replace(DAY, DAY + " AND \"source\" = 'batch'"), "only the __time column"),
        (good().replace("\nPARTITIONED BY DAY", ""), "PARTITIONED BY clause"),
        (good().replace("PARTITIONED BY DAY", "PARTITIONED BY HOUR"), "partitioned by DAY"),
        (good().replace(f"OVERWRITE WHERE {DAY}", "OVERWRITE ALL"), "OVERWRITE ALL"),
        (
            good().replace("REPLACE INTO", "INSERT INTO").replace(f"OVERWRITE WHERE {DAY}\n", ""),
            "INSERT",
        ),
        (good().replace("00:00:00' AND", "06:00:00' AND"), "not aligned"),
        (good().replace(', "schema_version" BIGINT', ""), "EXTEND columns differ"),
        (good().replace('"n" BIGINT', '"n" DOUBLE'), "EXTEND columns differ"),
        (good().split("\nEXTEND")[0] + "\nPARTITIONED BY DAY", "EXTEND"),
        (good().replace('"type":"inline"', '"type":"http"'), "inline data"),
        (good().replace('\'{"type": "json"}\'', '\'{"type": "csv"}\''), "JSON lines"),
        (good().replace('TIME_PARSE("date") AS "__time", ', ""), "not the results schema"),
        (
            replace_statement(DATASOURCE, slice_of(), slice_rows(), carry_over=True),
            "udf_results",  # the carried-over part reads a datasource that does not exist
        ),
    ],
    ids=[
        "where-not-time",
        "no-partitioned-by",
        "hour",
        "overwrite-all",
        "insert",
        "unaligned",
        "missing-column",
        "wrong-type",
        "no-extend",
        "http-source",
        "csv",
        "no-time",
        "absent-datasource",
    ],
)
def test_it_refuses_what_druid_refuses(fake_druid: FakeDruid, statement: str, reason: str) -> None:
    answer = submit(fake_druid, statement)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["error"] == "druidException" and reason in body["errorMessage"]
    assert fake_druid.tasks == {}


def test_rows_outside_the_interval_fail_the_task(fake_druid: FakeDruid) -> None:
    statement = replace_statement(
        DATASOURCE, slice_of(), [make_row(date="2026-01-05")], carry_over=False
    )
    task = submit(fake_druid, statement).json()["taskId"]
    status = wait(fake_druid, task)
    assert status["statusCode"] == "FAILED" and "InsertTimeOutOfBounds" in status["errorMsg"]
    assert fake_druid.rows(DATASOURCE) == []


def test_a_replace_swaps_exactly_its_interval(fake_druid: FakeDruid) -> None:
    for day in ("2026-01-01", "2026-01-02", "2026-01-03"):
        rows, piece = slice_rows(date=day), slice_of(day=date.fromisoformat(day))
        exists = bool(fake_druid.rows(DATASOURCE))
        answer = submit(fake_druid, replace_statement(DATASOURCE, piece, rows, carry_over=exists))
        assert wait(fake_druid, answer.json()["taskId"])["statusCode"] == "SUCCESS"
    statement = replace_statement(DATASOURCE, slice_of(), [make_row(volume=0)], carry_over=True)
    assert (
        wait(fake_druid, submit(fake_druid, statement).json()["taskId"])["statusCode"] == "SUCCESS"
    )
    stored = fake_druid.rows(DATASOURCE)
    by_day = {
        d: [r for r in stored if r["date"] == d] for d in ("2026-01-01", "2026-01-02", "2026-01-03")
    }
    assert [len(v) for v in by_day.values()] == [2, 1, 2]
    assert by_day["2026-01-02"][0]["volume"] == 0
    assert all(r["__time"].isoformat().startswith(r["date"]) for r in stored)
