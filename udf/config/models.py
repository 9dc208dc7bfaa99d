"""Base model and shared field types for every config file."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

_IDENTIFIER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class StrictModel(BaseModel):
    """Unknown keys are errors, types are not coerced, and a loaded spec never changes."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _identifier(value: str) -> str:
    if not _IDENTIFIER.fullmatch(value):
        raise ValueError(
            "must hold only letters, digits, '_', '.', '-' (at most 128 characters), "
            "not starting with '.' or '-'"
        )
    return value


def _email(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError(f"{value!r} is not an email address")
    return value.lower()


Identifier = Annotated[str, AfterValidator(_identifier)]
Email = Annotated[str, AfterValidator(_email)]
