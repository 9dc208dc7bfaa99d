"""The fake Druid is the Druid store's test oracle: it must refuse what Druid (or the results
schema) refuses, and apply a REPLACE the way Druid does."""

from __future__ import annotations

import time
from datetime import date

import pytest
import requests

from results.stores.druid_sql import replace_statement
from tests.integration.results.conftest import DATASOURCE
from tests.support.fake_druid import FakeDruid
from tests.support.result_rows import DAY as DATE
from tests.support.result_rows import make_row, slice_rows

DAY = (
    "\"__time\" >= TIMESTAMP '2026-01-02 00:00:00' AND \"__time\" < TIMESTAMP '2026-01-03 00:00:00'"
)
SELF_READ = f'SELECT "__time", "experiment" FROM "{DATASOURCE}" WHERE {DAY}'


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
    return replace_statement(DATASOURCE, DATE, slice_rows())


def inline_select() -> str:
    """The SELECT of a good statement, between OVERWRITE WHERE and PARTITIONED BY."""
    return good().split("\n", 2)[2].rsplit("\nPARTITIONED BY", 1)[0]


def run(fake: FakeDruid, statement: str) -> dict:
    answer = submit(fake, statement)
    assert answer.status_code == 200, answer.text
    return wait(fake, answer.json()["taskId"])


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
            good().replace(
                "\nPARTITIONED BY DAY", f"\nUNION ALL\n{inline_select()}\nPARTITIONED BY DAY"
            ),
            "UNION",  # even of two inline sources: MSQ unions only plain tables
        ),
        (
            good().replace("\nPARTITIONED BY DAY", "\nUNION\nSELECT 1\nPARTITIONED BY DAY"),
            "UNION",
        ),
        (
            good().replace("\nPARTITIONED BY DAY", f"\nEXCEPT\n{SELF_READ}\nPARTITIONED BY DAY"),
            "EXCEPT",
        ),
        (good().replace(inline_select(), SELF_READ), "reads the datasource it overwrites"),
        (
            good().replace(
                "\nPARTITIONED BY DAY",
                f'\nWHERE "experiment" NOT IN (SELECT "experiment" FROM "{DATASOURCE}")'
                "\nPARTITIONED BY DAY",
            ),
            "reads the datasource it overwrites",  # in a subquery too
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
        "union-all",
        "union",
        "except",
        "reads-itself",
        "reads-itself-in-a-subquery",
    ],
)
def test_it_refuses_what_druid_refuses(fake_druid: FakeDruid, statement: str, reason: str) -> None:
    answer = submit(fake_druid, statement)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["error"] == "druidException" and reason in body["errorMessage"]
    assert fake_druid.tasks == {}


def test_reading_the_datasource_itself_is_refused_even_when_it_exists(
    fake_druid: FakeDruid,
) -> None:
    assert run(fake_druid, good())["statusCode"] == "SUCCESS"
    for statement in (
        good().replace(inline_select(), f"{SELF_READ}\nUNION ALL\n{inline_select()}"),
        good().replace(inline_select(), SELF_READ),
    ):
        answer = submit(fake_druid, statement)
        assert answer.status_code == 400 and answer.json()["error"] == "druidException"
    assert len(fake_druid.tasks) == 1


def test_rows_outside_the_interval_fail_the_task(fake_druid: FakeDruid) -> None:
    statement = replace_statement(DATASOURCE, DATE, [make_row()]).replace(
        r"\"date\":\"2026-01-02\"", r"\"date\":\"2026-01-05\""
    )
    assert "2026-01-05" in statement
    task = submit(fake_druid, statement).json()["taskId"]
    status = wait(fake_druid, task)
    assert status["statusCode"] == "FAILED" and "InsertTimeOutOfBounds" in status["errorMsg"]
    assert fake_druid.rows(DATASOURCE) == []


def test_a_replace_swaps_exactly_its_interval(fake_druid: FakeDruid) -> None:
    for day in ("2026-01-01", "2026-01-02", "2026-01-03"):
        statement = replace_statement(DATASOURCE, date.fromisoformat(day), slice_rows(date=day))
        assert run(fake_druid, statement)["statusCode"] == "SUCCESS"
    statement = replace_statement(DATASOURCE, DATE, [make_row(volume=0)])
    assert run(fake_druid, statement)["statusCode"] == "SUCCESS"
    stored = fake_druid.rows(DATASOURCE)
    by_day = {
        d: [r for r in stored if r["date"] == d] for d in ("2026-01-01", "2026-01-02", "2026-01-03")
    }
    assert [len(v) for v in by_day.values()] == [2, 1, 2]
    assert by_day["2026-01-02"][0]["volume"] == 0
    assert all(r["__time"].isoformat().startswith(r["date"]) for r in stored)


def test_a_replace_with_no_rows_drops_its_day(fake_druid: FakeDruid) -> None:
    """The empty day's placeholder row is filtered out; no rows drop the day (Druid 29+)."""
    for day in ("2026-01-02", "2026-01-03"):
        statement = replace_statement(DATASOURCE, date.fromisoformat(day), slice_rows(date=day))
        assert run(fake_druid, statement)["statusCode"] == "SUCCESS"
    empty = replace_statement(DATASOURCE, DATE, [])
    assert '"data":"{}"' in empty and "\nWHERE \"date\" = '2026-01-02'\n" in empty
    task = requests.post(
        fake_druid.url + "/druid/v2/sql/task",
        json={"query": empty, "context": {"failOnEmptyInsert": True}},
        timeout=5,
    ).json()["taskId"]
    status = wait(fake_druid, task)
    assert status["statusCode"] == "FAILED" and "InsertCannotBeEmpty" in status["errorMsg"]
    assert len(fake_druid.rows(DATASOURCE)) == 4
    assert run(fake_druid, empty)["statusCode"] == "SUCCESS"
    assert {r["date"] for r in fake_druid.rows(DATASOURCE)} == {"2026-01-03"}
