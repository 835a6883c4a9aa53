"""Turning synced rows into JSON-safe dicts and back, the same way on desk and server."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, inspect
from sqlalchemy.orm import Mapper

from clinic_desktop.models.base import SyncMixin
from clinic_desktop.models.types import UTCDateTime


def _column_types(cls: type[Any]) -> dict[str, Any]:
    mapper: Mapper[Any] = inspect(cls)
    return {attr.key: attr.columns[0].type for attr in mapper.column_attrs}


def to_json_value(value: Any) -> Any:
    """Dates and datetimes become ISO strings; everything else is already JSON-safe."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def from_json_value(column_type: Any, value: Any) -> Any:
    """Inverse of :func:`to_json_value`, guided by the column's type."""
    if value is None:
        return None
    if isinstance(column_type, UTCDateTime):
        return datetime.fromisoformat(value) if isinstance(value, str) else value
    if isinstance(column_type, Date):
        return date.fromisoformat(value) if isinstance(value, str) else value
    return value


def row_fields(row: SyncMixin, names: list[str] | None = None) -> dict[str, Any]:
    """The named (default: all) column values of a row, JSON-safe."""
    types = _column_types(type(row))
    keys = names if names is not None else list(types)
    return {key: to_json_value(getattr(row, key)) for key in keys}


def decode_fields(cls: type[Any], data: dict[str, Any]) -> dict[str, Any]:
    """JSON field values to Python values; unknown field names raise ``KeyError``."""
    types = _column_types(cls)
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in types:
            raise KeyError(key)
        out[key] = from_json_value(types[key], value)
    return out


def column_names(cls: type[Any]) -> list[str]:
    return list(_column_types(cls))
