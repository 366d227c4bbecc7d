"""Tests of the pure parts of talon_sdk (schemas, validation, dispatch, errors).

Run natively: python3 -m unittest discover -s sdk/python/tests
The host services need the component bindings and are exercised by building
examples/plugins/python and invoking it through Talon.
"""

import json
import sys
import unittest
from pathlib import Path
from typing import Annotated, Literal, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from talon_sdk import Plugin, SchemaError, ToolError  # noqa: E402
from talon_sdk.schema import ArgumentError, function_schema, validate  # noqa: E402


def greet(
    name: Annotated[str, "Who to greet."],
    times: int = 1,
    tone: Literal["warm", "formal"] = "warm",
    tags: Optional[list[str]] = None,
) -> str:
    """Greets someone."""
    return " ".join([f"Hello, {name}!"] * times)


class SchemaTests(unittest.TestCase):
    def test_function_schema(self):
        schema = function_schema(greet)
        self.assertEqual(schema["type"], "object")
        self.assertEqual(schema["required"], ["name"])
        self.assertFalse(schema["additionalProperties"])
        props = schema["properties"]
        self.assertEqual(props["name"], {"type": "string", "description": "Who to greet."})
        self.assertEqual(props["times"], {"type": "integer", "default": 1})
        self.assertEqual(props["tone"]["enum"], ["warm", "formal"])
        self.assertEqual(props["tags"], {"type": ["array", "null"], "items": {"type": "string"}})

    def test_unsupported_types_are_refused(self):
        def bad(x: set) -> None:
            """Bad."""

        with self.assertRaises(SchemaError):
            function_schema(bad)

        def varargs(*names: str) -> None:
            """Bad."""

        with self.assertRaises(SchemaError):
            function_schema(varargs)

    def test_validation_names_the_location(self):
        schema = function_schema(greet)
        # Valid arguments pass, including an explicit null for an Optional.
        validate({"name": "a", "times": 2, "tone": "formal", "tags": None}, schema)
        validate({"name": "a", "tags": ["x", "y"]}, schema)
        cases = [
            ({}, "arguments: missing field `name`"),
            ({"name": 3}, "arguments.name: expected string, got integer"),
            ({"name": "a", "times": 1.5}, "arguments.times: expected integer, got number"),
            ({"name": "a", "times": True}, "arguments.times: expected integer, got boolean"),
            ({"name": "a", "tone": "rude"}, "arguments.tone: 'rude' is not one of 'warm', 'formal'"),
            ({"name": "a", "tags": ["x", 2]}, "arguments.tags[1]: expected string, got integer"),
            ({"name": "a", "nam": 1}, "arguments: unknown field `nam`"),
        ]
        for value, message in cases:
            with self.assertRaises(ArgumentError) as caught:
                validate(value, schema)
            self.assertIn(message, str(caught.exception))


class PluginTests(unittest.TestCase):
    def setUp(self):
        self.plugin = Plugin()
        self.plugin.tool(greet)

        @self.plugin.tool(name="read-it", description="Reads.")
        def read(path: str) -> dict:
            raise FileNotFoundError(f"no file {path}")

        @self.plugin.tool
        def crash() -> None:
            """Fails."""
            raise RuntimeError("boom")

    def test_describe(self):
        described = self.plugin.describe()
        self.assertEqual([d["name"] for d in described], ["greet", "read-it", "crash"])
        self.assertEqual(described[0]["description"], "Greets someone.")
        self.assertEqual(json.loads(described[0]["parameters_schema"])["required"], ["name"])

    def test_invoke_returns_json(self):
        self.assertEqual(self.plugin.invoke("greet", '{"name": "Ada", "times": 2}'),
                         '"Hello, Ada! Hello, Ada!"')
        self.assertEqual(self.plugin.invoke("greet", '{"name": "Bo"}'), '"Hello, Bo!"')

    def assert_tool_error(self, kind, name, arguments, fragment):
        with self.assertRaises(ToolError) as caught:
            self.plugin.invoke(name, arguments)
        self.assertEqual(caught.exception.kind, kind)
        self.assertIn(fragment, caught.exception.message)

    def test_errors_become_tool_errors(self):
        self.assert_tool_error("not-found", "nope", "{}", "no tool `nope`")
        self.assert_tool_error("invalid-arguments", "greet", "{oops", "not JSON")
        self.assert_tool_error("invalid-arguments", "greet", "{}", "missing field `name`")
        self.assert_tool_error("not-found", "read-it", '{"path": "x"}', "no file x")
        self.assert_tool_error("failed", "crash", "{}", "RuntimeError: boom")

    def test_registration_is_checked(self):
        with self.assertRaises(SchemaError):
            self.plugin.tool(greet)

        def Bad_Name() -> None:
            """Bad."""

        with self.assertRaises(SchemaError):
            self.plugin.tool(Bad_Name)

        def undocumented() -> None:
            pass

        with self.assertRaises(SchemaError):
            self.plugin.tool(undocumented)


class ExampleAppTests(unittest.TestCase):
    """The Python example imports and runs natively, as a plugin author's tests would."""

    def test_word_count_example(self):
        example = Path(__file__).resolve().parents[3] / "examples" / "plugins" / "python"
        sys.path.insert(0, str(example))
        try:
            import app  # noqa: PLC0415
        finally:
            sys.path.remove(str(example))
        tools = app.Tools()
        self.assertEqual([d["name"] for d in tools.describe()], ["word_count_python"])
        out = tools.invoke("word_count_python", '{"text": "The cat and the hat.", "top": 2}')
        self.assertEqual(
            json.loads(out),
            {"words": 5, "characters": 20, "top": [{"word": "the", "count": 2}, {"word": "and", "count": 1}]},
        )
        with self.assertRaises(ToolError) as caught:
            tools.invoke("word_count_python", '{"text": "x", "top": 500}')
        self.assertEqual(caught.exception.kind, "invalid-arguments")

    def test_host_services_outside_a_component(self):
        from talon_sdk import log, memory, settings  # noqa: PLC0415

        log.info("printed to stderr")
        self.assertIsNone(settings.get("anything"))
        self.assertEqual(settings.get("anything", "fallback"), "fallback")
        with self.assertRaises(ToolError) as caught:
            memory.get("k")
        self.assertEqual(caught.exception.kind, "failed")


if __name__ == "__main__":
    unittest.main()


class HttpOutsideComponentTests(unittest.TestCase):
    """talon_sdk.http imports in plain CPython; requests need the component."""

    def test_a_request_outside_a_component_is_an_http_error(self):
        from talon_sdk import http

        with self.assertRaises(http.HttpError) as caught:
            http.request("GET", "https://api.telegram.org/")
        self.assertIn("wasi:http", str(caught.exception))

    def test_a_response_decodes_json_and_finds_headers(self):
        from talon_sdk.http import Response

        answer = Response(200, [("content-type", "application/json")], b'{"ok": true}')
        self.assertEqual(answer.json(), {"ok": True})
        self.assertEqual(answer.header("Content-Type"), "application/json")
        self.assertIsNone(answer.header("x-missing"))
