"""Base model and shared field types for every config file."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

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


Identifier = Annotated[str, AfterValidator(_identifier)]
Email = Annotated[str, AfterValidator(_email)]
