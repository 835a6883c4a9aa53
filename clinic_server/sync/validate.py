"""Checking pushed field values against the shared models' column types.

A value the database would refuse (too long, out of range, a NUL character, a naive
datetime) must become a readable rejection, never a database error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Date, Integer, String, inspect

from clinic_desktop.models.types import JSONDict, JSONList, UTCDateTime

MAX_TEXT = 100_000
_INT32 = 2**31
_INT64 = 2**63


@dataclass(frozen=True)
class ColumnSpec:
    kind: str  # str | int | bool | date | datetime | list | dict | other
    nullable: bool
    max_len: int | None
    bits: int
    required: bool  # must be given on insert (no default, not nullable)


_SPECS: dict[type[Any], dict[str, ColumnSpec]] = {}


def column_specs(model: type[Any]) -> dict[str, ColumnSpec]:
    """What each column of a synced model accepts (computed once per model)."""
    cached = _SPECS.get(model)
    if cached is not None:
        return cached
    specs: dict[str, ColumnSpec] = {}
    for attr in inspect(model).column_attrs:
        column = attr.columns[0]
        ctype = column.type
        kind, max_len, bits = "other", None, 0
        if isinstance(ctype, UTCDateTime):
            kind = "datetime"
        elif isinstance(ctype, JSONList):
            kind = "list"
        elif isinstance(ctype, JSONDict):
            kind = "dict"
        elif isinstance(ctype, Boolean):
            kind = "bool"
        elif isinstance(ctype, Date):
            kind = "date"
        elif isinstance(ctype, BigInteger):
            kind, bits = "int", 64
        elif isinstance(ctype, Integer):
            kind, bits = "int", 32
        elif isinstance(ctype, String):
            kind, max_len = "str", ctype.length or MAX_TEXT
        required = not column.nullable and column.default is None and not column.primary_key
        specs[attr.key] = ColumnSpec(kind, bool(column.nullable), max_len, bits, required)
    _SPECS[model] = specs
    return specs


def _encodable(text: str) -> bool:
    """PostgreSQL stores UTF-8; a lone surrogate from JSON ``\\ud800`` cannot be encoded."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _type_problem(spec: ColumnSpec, value: Any) -> str | None:
    if value is None:
        return None if spec.nullable else "must not be empty (null)"
    if spec.kind == "str":
        if not isinstance(value, str):
            return "must be text"
        if spec.max_len is not None and len(value) > spec.max_len:
            return f"is too long (at most {spec.max_len} characters)"
        if "\x00" in value:
            return "must not contain NUL characters"
        if not _encodable(value):
            return "is not valid text (broken Unicode)"
        return None
    if spec.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be a whole number"
        limit = _INT32 if spec.bits == 32 else _INT64
        if not -limit <= value < limit:
            return "is out of range"
        return None
    if spec.kind == "bool":
        return None if isinstance(value, bool) else "must be true or false"
    if spec.kind == "date":
        if not isinstance(value, str):
            return "must be a date (YYYY-MM-DD)"
        try:
            date.fromisoformat(value)
        except ValueError:
            return "must be a date (YYYY-MM-DD)"
        return None
    if spec.kind == "datetime":
        if not isinstance(value, str):
            return "must be a date and time with a UTC offset"
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return "must be a date and time with a UTC offset"
        if parsed.tzinfo is None:
            return "must carry a UTC offset"
        return None
    if spec.kind == "list":
        if not isinstance(value, list):
            return "must be a list"
        return None if _encodable(json.dumps(value, ensure_ascii=False)) else "is not valid text"
    if spec.kind == "dict":
        if not isinstance(value, dict):
            return "must be an object"
        return None if _encodable(json.dumps(value, ensure_ascii=False)) else "is not valid text"
    return None


def fields_problem(model: type[Any], fields: dict[str, Any]) -> str | None:
    """Why these field values cannot be stored, or ``None`` when they all fit."""
    specs = column_specs(model)
    for name, value in fields.items():
        spec = specs.get(name)
        if spec is None:
            return f"Unknown field {name!r} for {model.__tablename__}."
        problem = _type_problem(spec, value)
        if problem:
            return f"Field {name!r} {problem}."
    return None


def missing_required(model: type[Any], fields: dict[str, Any]) -> list[str]:
    """Fields an insert must carry (no default, not nullable)."""
    return [
        name
        for name, spec in column_specs(model).items()
        if spec.required and name not in fields and name not in {"clinic_id"}
    ]
