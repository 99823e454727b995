"""Nested dataclass configs from plain dicts (YAML files, JSON in checkpoints)."""
from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def from_dict(cls: type[T], data: dict, where: str = "config") -> T:
    """Build dataclass `cls` from a (possibly partial) nested dict.

    Missing fields keep their defaults; unknown keys raise ValueError naming where they were found,
    so a typo in a YAML file or an override fails loudly instead of being ignored; so do the values a
    dataclass's `__post_init__` rejects. Lists become tuples (YAML and JSON have no tuples).
    """
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(names)}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_dict(hint, value, f"{where}.{key}")
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:  # a dataclass's own checks (__post_init__): say where
        raise ValueError(f"{where}: {err}") from err
