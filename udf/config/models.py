"""Base model and shared field types for every config file."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from udf.names import NAME_RULE, is_name

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class StrictModel(BaseModel):
    """Unknown keys are errors, types are not coerced, and a loaded spec never changes."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _identifier(value: str) -> str:
    if not is_name(value):
        raise ValueError(NAME_RULE)
    return value


def _email(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError(f"{value!r} is not an email address")
    return value.lower()


def _option_text(value: Any) -> Any:
    """An engine option as the engine reads it, text: YAML's ``true``, ``4`` and ``0.5`` as
    ``"true"``, ``"4"`` and ``"0.5"``, as in Flink's own config.yaml (anything else, a list or
    a map, is then refused as not text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


Identifier = Annotated[str, AfterValidator(_identifier)]
Email = Annotated[str, AfterValidator(_email)]
# Options handed to an engine or a client as they are (Spark, Flink, Kafka): text, and
# scalars written as YAML numbers or booleans are taken as the text the engine would read.
EngineOptions = dict[str, Annotated[str, BeforeValidator(_option_text)]]
