"""Write Talon tool plugins in Python.

A tool is a typed Python function; the SDK builds its JSON Schema from the
type hints, checks the arguments a model sends against it, calls the function
with them as keyword arguments and returns the result as JSON::

    from typing import Annotated
    from talon_sdk import Plugin

    plugin = Plugin()

    @plugin.tool
    def greet(name: Annotated[str, "Who to greet."]) -> str:
        \"\"\"Greets someone by name.\"\"\"
        return f"Hello, {name}!"

    Tools = plugin.tools_export()

componentize-py looks for a class named after each exported interface in the
app module: ``Tools`` for the ``tool`` world, plus ``Instructions`` for the
``skill`` world (``Instructions = plugin.instructions_export("...")``).

Build with componentize-py against ``wit/talon-plugin-0.1.0`` (see GUIDE.md).
The host services (:mod:`log <talon_sdk.log>`, :data:`memory`,
:data:`settings`) import the component bindings lazily, so the pure parts of
this package (schemas, validation, dispatch) also run in plain CPython.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from typing import Any, Callable, Optional

from .schema import ArgumentError, SchemaError, function_schema, validate

__all__ = [
    "ArgumentError",
    "Plugin",
    "SchemaError",
    "ToolError",
    "log",
    "memory",
    "settings",
]

WIT_VERSION = "0.1.0"
"""The WIT package version this SDK implements (``wit = "..."`` in the manifest)."""

_TOOL_NAME = re.compile(r"^[a-z0-9_-]+$")


class ToolError(Exception):
    """A failure reported to the agent as the WIT ``tool-error`` variant.

    Raise it with one of the constructors; other exceptions are converted
    too (``FileNotFoundError`` to ``not-found``, ``PermissionError`` to
    ``permission-denied``, anything else to ``failed``).
    """

    KINDS = ("invalid-arguments", "not-found", "permission-denied", "failed")

    def __init__(self, kind: str, message: str) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown tool error kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.message = message

    @classmethod
    def invalid_arguments(cls, message: str) -> "ToolError":
        """The arguments do not fit; the message says how."""
        return cls("invalid-arguments", message)

    @classmethod
    def not_found(cls, message: str) -> "ToolError":
        """Something the tool looked for does not exist."""
        return cls("not-found", message)

    @classmethod
    def permission_denied(cls, message: str) -> "ToolError":
        """The host refused something the tool needed."""
        return cls("permission-denied", message)

    @classmethod
    def failed(cls, message: str) -> "ToolError":
        """Anything else went wrong."""
        return cls("failed", message)

    @classmethod
    def from_exception(cls, error: BaseException) -> "ToolError":
        """Maps any exception raised by a tool to a tool error."""
        if isinstance(error, ToolError):
            return error
        if isinstance(error, ArgumentError):
            return cls.invalid_arguments(str(error))
        if isinstance(error, FileNotFoundError):
            return cls.not_found(str(error))
        if isinstance(error, PermissionError):
            return cls.permission_denied(str(error))
        return cls.failed(f"{type(error).__name__}: {error}")

    def __repr__(self) -> str:
        return f"ToolError({self.kind!r}, {self.message!r})"


@dataclasses.dataclass
class _Tool:
    name: str
    description: str
    function: Callable[..., Any]
    schema: dict[str, Any]


def _to_json(value: Any) -> str:
    def default(obj: Any) -> Any:
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return dataclasses.asdict(obj)
        if isinstance(obj, (set, frozenset, tuple)):
            return list(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON serializable")

    return json.dumps(value, default=default, ensure_ascii=False, separators=(",", ":"))


class Plugin:
    """The tools of one plugin, registered with :meth:`tool`."""

    def __init__(self) -> None:
        self._tools: dict[str, _Tool] = {}

    def tool(
        self,
        function: Optional[Callable[..., Any]] = None,
        *,
        name: Optional[str] = None,
        description: Optional[str] = None,
    ) -> Any:
        """Registers a function as a tool; use as ``@plugin.tool`` or
        ``@plugin.tool(name="...", description="...")``.

        The name defaults to the function's name and the description to its
        docstring. Every parameter needs a type hint the SDK can describe;
        ``Annotated[T, "text"]`` adds a description, a default makes the
        parameter optional.
        """

        def register(f: Callable[..., Any]) -> Callable[..., Any]:
            tool_name = name or f.__name__
            if not _TOOL_NAME.match(tool_name):
                raise SchemaError(
                    f"tool name {tool_name!r}: use lowercase letters, digits, '_' and '-'"
                )
            if tool_name in self._tools:
                raise SchemaError(f"tool {tool_name!r} is registered twice")
            text = description or inspect.getdoc(f) or ""
            if not text:
                raise SchemaError(f"tool {tool_name!r} needs a description (a docstring)")
            self._tools[tool_name] = _Tool(tool_name, text, f, function_schema(f))
            return f

        return register(function) if function is not None else register

    def describe(self) -> list[dict[str, str]]:
        """The tools as ``{name, description, parameters_schema}`` dicts."""
        return [
            {
                "name": t.name,
                "description": t.description,
                "parameters_schema": json.dumps(t.schema, separators=(",", ":")),
            }
            for t in self._tools.values()
        ]

    def invoke(self, name: str, arguments: str) -> str:
        """Runs tool ``name`` with JSON ``arguments``; returns JSON text.

        Raises :class:`ToolError` for every failure, including exceptions
        raised by the tool itself.
        """
        tool = self._tools.get(name)
        if tool is None:
            known = ", ".join(self._tools) or "none"
            raise ToolError.not_found(f"no tool `{name}` in this plugin (it has: {known})")
        try:
            args = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as error:
            raise ToolError.invalid_arguments(f"arguments are not JSON: {error}") from None
        try:
            validate(args, tool.schema)
            return _to_json(tool.function(**args))
        except BaseException as error:  # noqa: BLE001 - every failure becomes a tool error
            raise ToolError.from_exception(error) from None

    def tools_export(self) -> type:
        """The class componentize-py instantiates for the ``tools`` export.

        Assign it to a module-level name ``Tools`` in the app module.
        """
        from wit_world import exports
        from wit_world.imports import types
        from componentize_py_types import Err

        plugin = self

        variants = {
            "invalid-arguments": types.ToolError_InvalidArguments,
            "not-found": types.ToolError_NotFound,
            "permission-denied": types.ToolError_PermissionDenied,
            "failed": types.ToolError_Failed,
        }

        class Tools(exports.Tools):
            def describe(self) -> list:
                return [
                    types.ToolDescriptor(d["name"], d["description"], d["parameters_schema"])
                    for d in plugin.describe()
                ]

            def invoke(self, name: str, arguments: str) -> str:
                try:
                    return plugin.invoke(name, arguments)
                except ToolError as error:
                    raise Err(variants[error.kind](error.message)) from None

        return Tools

    @staticmethod
    def instructions_export(text: str) -> type:
        """The class componentize-py instantiates for a skill's
        ``instructions`` export. Assign it to ``Instructions`` in the app module.
        """
        from wit_world import exports

        class Instructions(exports.Instructions):
            def instructions(self) -> str:
                return text

        return Instructions


class _Log:
    """Structured logs, attributed to the plugin by the host."""

    def _log(self, level: str, message: str) -> None:
        from wit_world.imports import log as host

        host.log(getattr(host.Level, level), str(message))

    def trace(self, message: str) -> None:
        """Very detailed diagnostics."""
        self._log("TRACE", message)

    def debug(self, message: str) -> None:
        """Diagnostics for plugin authors."""
        self._log("DEBUG", message)

    def info(self, message: str) -> None:
        """A normal event worth keeping."""
        self._log("INFO", message)

    def warn(self, message: str) -> None:
        """Something unexpected the tool recovered from."""
        self._log("WARN", message)

    def error(self, message: str) -> None:
        """A failure."""
        self._log("ERROR", message)


class _Memory:
    """Key-value memory scoped by the host to the calling agent and plugin.

    Host refusals raise :class:`ToolError` (``permission-denied`` for keys
    outside the grant, ``failed`` otherwise), so they reach the agent as is.
    """

    @staticmethod
    def _call(operation: str, *args: Any) -> Any:
        from wit_world.imports import memory as host
        from componentize_py_types import Err

        try:
            return getattr(host, operation)(*args)
        except Err as error:
            variant = error.value
            message = f"memory: {variant.value}"
            if isinstance(variant, host.MemoryError_Denied):
                raise ToolError.permission_denied(message) from None
            raise ToolError.failed(message) from None

    def get(self, key: str) -> Optional[str]:
        """The value under ``key``, or ``None``."""
        return self._call("get", key)

    def set(self, key: str, value: str) -> None:
        """Stores ``value`` under ``key``."""
        self._call("set", key, value)

    def delete(self, key: str) -> bool:
        """Removes ``key``; returns whether it existed."""
        return self._call("delete", key)

    def list_keys(self, prefix: str = "") -> list[str]:
        """The keys starting with ``prefix``."""
        return self._call("list_keys", prefix)

    def get_json(self, key: str) -> Any:
        """A JSON value stored with :meth:`set_json`, or ``None``."""
        text = self.get(key)
        return None if text is None else json.loads(text)

    def set_json(self, key: str, value: Any) -> None:
        """Stores ``value`` as JSON under ``key``."""
        self.set(key, _to_json(value))


class _Settings:
    """Settings the operator configured for this plugin (read-only)."""

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:
        """The setting ``key``, or ``default`` if it is not set."""
        from wit_world.imports import settings as host

        value = host.get(key)
        return default if value is None else value

    def require(self, key: str) -> str:
        """The setting ``key``; raises a ``failed`` tool error if it is not set."""
        value = self.get(key)
        if value is None:
            raise ToolError.failed(
                f"setting `{key}` is not set; the operator must configure it for this plugin"
            )
        return value


log = _Log()
"""Structured logs: ``log.info("...")``, ``log.warn(...)`` ..."""

memory = _Memory()
"""Key-value memory: ``memory.get(key)``, ``memory.set(key, value)`` ..."""

settings = _Settings()
"""Operator settings: ``settings.get(key, default)``, ``settings.require(key)``."""
