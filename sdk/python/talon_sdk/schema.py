"""JSON Schemas from Python type hints, and validation of arguments against them.

Pure Python with no imports from the component bindings, so it is unit-tested
natively (``python3 -m unittest discover sdk/python/tests``).

Supported annotations: ``str``, ``int``, ``float``, ``bool``, ``list[T]``,
``dict[str, T]``, ``T | None`` / ``Optional[T]``, ``Literal[...]``, ``Any``,
and ``Annotated[T, "description"]`` to describe a parameter.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any, Callable

_PRIMITIVES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


class SchemaError(TypeError):
    """A tool's signature uses a type the SDK cannot describe."""


class ArgumentError(ValueError):
    """Arguments that do not fit the schema; the message says where and why."""


def _is_optional(annotation: Any) -> tuple[bool, Any]:
    """Splits ``T | None`` into ``(True, T)``; other types give ``(False, annotation)``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1 and len(typing.get_args(annotation)) == 2:
            return True, members[0]
    return False, annotation


def type_schema(annotation: Any) -> dict[str, Any]:
    """The JSON Schema of one annotation."""
    description = None
    if typing.get_origin(annotation) is typing.Annotated:
        annotation, *extras = typing.get_args(annotation)
        description = next((e for e in extras if isinstance(e, str)), None)
    optional, inner = _is_optional(annotation)
    schema = _base_schema(inner)
    if optional and "type" in schema:
        schema["type"] = [schema["type"], "null"]
    if description:
        schema["description"] = description
    return schema


def _base_schema(annotation: Any) -> dict[str, Any]:
    if annotation is Any or annotation is inspect.Parameter.empty:
        return {}
    if annotation in _PRIMITIVES:
        return {"type": _PRIMITIVES[annotation]}
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is list or origin is list:
        return {"type": "array", "items": type_schema(args[0])} if args else {"type": "array"}
    if annotation is dict or origin is dict:
        if args and args[0] is not str:
            raise SchemaError("dict keys must be str: JSON object keys are strings")
        schema: dict[str, Any] = {"type": "object"}
        if args:
            schema["additionalProperties"] = type_schema(args[1])
        return schema
    if origin is typing.Literal:
        values = list(args)
        schema = {"enum": values}
        kinds = {type(v) for v in values}
        if len(kinds) == 1 and next(iter(kinds)) in _PRIMITIVES:
            schema["type"] = _PRIMITIVES[next(iter(kinds))]
        return schema
    raise SchemaError(f"cannot describe {annotation!r} as JSON Schema")


def function_schema(function: Callable[..., Any]) -> dict[str, Any]:
    """The JSON Schema of a function's keyword arguments.

    Parameters without a default are required. ``*args`` and ``**kwargs`` are
    refused: a tool's arguments are one JSON object with known keys.
    """
    hints = typing.get_type_hints(function, include_extras=True)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, parameter in inspect.signature(function).parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise SchemaError(f"{function.__name__}: *args and **kwargs cannot be described")
        schema = type_schema(hints.get(name, Any))
        if parameter.default is parameter.empty:
            required.append(name)
        elif parameter.default is not None:
            schema["default"] = parameter.default
        properties[name] = schema
    schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _fits(value: Any, kind: str) -> bool:
    actual = _type_name(value)
    if kind == "number":
        return actual in ("number", "integer")
    if kind == "integer" and actual == "number":
        return float(value).is_integer()
    return actual == kind


def validate(value: Any, schema: dict[str, Any], where: str = "arguments") -> None:
    """Checks ``value`` against the subset of JSON Schema this SDK generates.

    Raises :class:`ArgumentError` naming the first offending location, for
    example ``arguments.tags[2]: expected string, got integer``.
    """
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_fits(value, k) for k in kinds):
            raise ArgumentError(f"{where}: expected {' or '.join(kinds)}, got {_type_name(value)}")
    if "enum" in schema and value not in schema["enum"]:
        choices = ", ".join(repr(v) for v in schema["enum"])
        raise ArgumentError(f"{where}: {value!r} is not one of {choices}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            validate(item, schema["items"], f"{where}[{index}]")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                raise ArgumentError(f"{where}: missing field `{name}`")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                validate(item, properties[name], f"{where}.{name}")
            elif extra is False:
                known = ", ".join(f"`{p}`" for p in properties) or "none"
                raise ArgumentError(f"{where}: unknown field `{name}`, expected one of {known}")
            elif isinstance(extra, dict):
                validate(item, extra, f"{where}.{name}")
