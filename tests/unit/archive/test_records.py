import pytest

from udf.archive.records import Corrupt, parse

VALID_EVENT = b'{"user_id": 1, "event_type": "click", "ts": 1767225600000}'


def test_valid_event_passes_unchanged() -> None:
    assert parse(VALID_EVENT, "events") == {
        "user_id": 1,
        "event_type": "click",
        "ts": 1767225600000,
    }


def test_optional_fields_are_kept_and_nulls_dropped() -> None:
    record = parse(
        b'{"user_id": 1, "event_type": "latency", "ts": 1767225600000, "value": 12.5, "country": "us", "platform": null}',
        "events",
    )
    assert record == {
        "user_id": 1,
        "event_type": "latency",
        "ts": 1767225600000,
        "value": 12.5,
        "country": "us",
    }


@pytest.mark.parametrize(
    ("line", "topic", "kind", "reason"),
    [
        (b'{"user_id": 1, "event_type": "click"', "events", "invalid_json", "invalid JSON"),
        (b"[1, 2]", "events", "not_object", "not a JSON object but an array"),
        (b"42", "events", "not_object", "an integer"),
        (b'{"event_type": "click", "ts": 1767225600000}', "events", "missing_field", "'user_id'"),
        (
            b'{"user_id": null, "event_type": "click", "ts": 1767225600000}',
            "events",
            "missing_field",
            "'user_id'",
        ),
        (
            b'{"user_id": "1", "event_type": "click", "ts": 1767225600000}',
            "events",
            "wrong_type",
            "'user_id' must be an integer",
        ),
        (
            b'{"user_id": 1, "event_type": "click", "ts": 1.5}',
            "events",
            "wrong_type",
            "'ts' must be an integer, not a float",
        ),
        (b'{"user_id": 1, "event_type": "click", "ts": 1.0}', "events", "wrong_type", "'ts'"),
        (
            b'{"user_id": true, "event_type": "click", "ts": 1767225600000}',
            "events",
            "wrong_type",
            "a boolean",
        ),
        (
            b'{"user_id": 1, "event_type": "", "ts": 1767225600000}',
            "events",
            "empty_field",
            "'event_type'",
        ),
        (b'{"user_id": 1, "event_type": "click", "ts": -1}', "events", "out_of_range", "'ts'"),
        # the accepted times (udf.times): not 1970 (a zero or missing time), not year 3000
        (
            b'{"user_id": 1, "event_type": "click", "ts": 0}',
            "events",
            "out_of_range",
            "'ts' is outside the accepted times, 2000-01-01 to 2099-12-31 UTC",
        ),
        (
            b'{"user_id": 1, "event_type": "click", "ts": 946684799999}',
            "events",
            "out_of_range",
            "'ts'",
        ),
        (
            b'{"user_id": 1, "event_type": "click", "ts": 32503680000000}',
            "events",
            "out_of_range",
            "'ts'",
        ),
        (
            b'{"user_id": 1, "event_type": "click", "ts": 4102444800000}',
            "events",
            "out_of_range",
            "'ts'",
        ),
        # an integer beyond 64 bits is said to be one, not "a float" (orjson reads it as one)
        (
            b'{"user_id": 1180591620717411303424, "event_type": "click", "ts": 1767225600000}',
            "events",
            "out_of_range",
            "'user_id' does not fit in 64 bits",
        ),
        (
            b'{"user_id": -1180591620717411303424, "event_type": "click", "ts": 1767225600000}',
            "events",
            "out_of_range",
            "'user_id' does not fit in 64 bits",
        ),
        (
            b'{"user_id": 18446744073709551615, "event_type": "click", "ts": 1767225600000}',
            "events",
            "out_of_range",
            "'user_id' does not fit in 64 bits",
        ),
        # ... however orjson's float rounds it (to -2**63 here), and a float literal stays one
        (
            b'{"user_id": -9223372036854775809, "event_type": "click", "ts": 1767225600000}',
            "events",
            "out_of_range",
            "'user_id' does not fit in 64 bits",
        ),
        (
            b'{"user_id": 1e19, "event_type": "click", "ts": 1767225600000}',
            "events",
            "wrong_type",
            "'user_id' must be an integer, not a float",
        ),
        (
            b'{"user_id": -9223372036854775808.0, "event_type": "click", "ts": 1767225600000}',
            "events",
            "wrong_type",
            "'user_id' must be an integer, not a float",
        ),
        (
            b'{"user_id": 1, "event_type": "click", "ts": 1767225600000, "value": "3"}',
            "events",
            "wrong_type",
            "'value'",
        ),
        (
            b'{"user_id": 1, "event_type": "click", "ts": 1767225600000, "country": {"a": 1}}',
            "events",
            "wrong_type",
            "'country'",
        ),
        (
            b'{"user_id": 1, "event_type": "click", "ts": 1767225600000, "flag": false}',
            "events",
            "wrong_type",
            "'flag'",
        ),
        (
            b'{"user_id": 1, "experiment": "e", "ts": 1767225600000}',
            "activations",
            "missing_field",
            "'group'",
        ),
        (
            b'{"user_id": 1, "experiment": 7, "group": "control", "ts": 1767225600000}',
            "activations",
            "wrong_type",
            "'experiment'",
        ),
    ],
)
def test_corrupt_records_name_their_reason(line: bytes, topic: str, kind: str, reason: str) -> None:
    with pytest.raises(Corrupt) as caught:
        parse(line, topic)
    assert caught.value.kind == kind
    assert reason in str(caught.value)


def test_the_edges_of_the_accepted_times_pass() -> None:
    first = b'{"user_id": 1, "event_type": "click", "ts": 946684800000}'  # 2000-01-01T00:00Z
    last = b'{"user_id": 1, "event_type": "click", "ts": 4102444799999}'  # 2099-12-31T23:59:59.999Z
    assert parse(first, "events")["ts"] == 946684800000
    assert parse(last, "events")["ts"] == 4102444799999


def test_valid_activation() -> None:
    line = b'{"user_id": 9, "experiment": "exp", "group": "control", "ts": 1767225600000}'
    assert parse(line, "activations")["group"] == "control"
