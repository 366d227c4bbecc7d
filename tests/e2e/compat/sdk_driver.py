"""Drives LibreFang's generated Python client (package `librefang-sdk`)
against a Talon daemon, every method once (tests/e2e/compat_sdk.rs).

Reads a plan from stdin: `{"base_url", "skip": ["METHOD /template"], "ops":
{"METHOD /template": {"path", "query", "body", "phase"}}}`, the requests the compatibility check would send, with
fixture ids filled in. Each client method is first called with placeholder
arguments and a recording transport, which tells which operation it sends;
then it is called for real with the plan's values for that operation. Prints
one JSON line per method: `{"method", "operation", "status", "error"}`, where
status 200 stands for any 2xx, 0 for no answer (the error says why), and
`null` for a method that was not called (its operation is in the plan's
`skip` list). Operations the plan does not know (the client is newer than
the reference document) are called with placeholder values.
"""

import inspect
import json
import sys

import librefang.librefang_client as librefang_client
from librefang import Client
from librefang.librefang_client import LibreFangError, _Resource

_urlopen = librefang_client.urlopen


def _urlopen_streams_headers_only(request, timeout):
    """The client's own request, but an event stream is closed once its
    status is known: some streams (a session's, the logs') wait for events
    that may never come, and their keep-alives defeat the read timeout."""
    response = _urlopen(request, timeout=timeout)
    if request.get_header("Accept") == "text/event-stream":
        response.close()
    return response


librefang_client.urlopen = _urlopen_streams_headers_only


class _Recorded(Exception):
    """Raised by the recording transport once it knows the operation."""

    def __init__(self, method, path):
        super().__init__(method)
        self.method = method
        self.path = path


def _record(method, path, *args, **kwargs):
    raise _Recorded(method, path)


def _methods(client):
    for resource_name, resource in sorted(vars(client).items()):
        if not isinstance(resource, _Resource):
            continue
        for name, func in sorted(inspect.getmembers(resource, inspect.ismethod)):
            if not name.startswith("_"):
                yield f"{resource_name}.{name}", func


def _placeholders(func):
    """Positional arguments as `{name}`, so the recorded path is the template."""
    args = []
    for p in inspect.signature(func).parameters.values():
        if p.kind == p.POSITIONAL_OR_KEYWORD and p.default is p.empty:
            args.append(b"raw" if p.name == "body" else "{" + p.name + "}")
    return args


def _path_values(template, path):
    values = {}
    for t, v in zip(template.split("/"), path.split("/")):
        if t.startswith("{") and t.endswith("}"):
            values[t[1:-1]] = v
    return values


def _call(func, template, plan):
    sig = inspect.signature(func).parameters
    values = _path_values(template, plan["path"])
    args, kwargs = [], {}
    for p in sig.values():
        if p.kind == p.POSITIONAL_OR_KEYWORD and p.default is p.empty:
            args.append(b"raw bytes" if p.name == "body" else values[p.name])
        elif p.kind == p.POSITIONAL_OR_KEYWORD and p.name in plan["query"]:
            kwargs[p.name] = plan["query"][p.name]
        elif p.kind == p.VAR_KEYWORD and isinstance(plan.get("body"), dict):
            kwargs.update(plan["body"])
    result = func(*args, **kwargs)
    if inspect.isgenerator(result):
        # A stream sends its request when first read; it ends at once (above).
        for _ in result:
            pass


def main():
    plan = json.load(sys.stdin)
    recorder = Client(plan["base_url"])
    recorder._request = _record
    recorder._stream = _record
    client = Client(plan["base_url"], timeout=60)
    calls = []
    for name, func in _methods(recorder):
        try:
            func(*_placeholders(func))
            raise RuntimeError(f"{name} sent nothing")
        except _Recorded as r:
            operation = f"{r.method} {r.path}"
            if operation in plan["skip"]:
                op_plan = None
            else:
                # Operations newer than the reference document: unserved by
                # Talon, so any value will do; called after the others.
                unknown = {"path": r.path.replace("{", "x").replace("}", "x"),
                           "query": {}, "body": None, "phase": 4}
                op_plan = plan["ops"].get(operation, unknown)
            phase = op_plan["phase"] if op_plan else -1
            calls.append((phase, name, operation, r.path, op_plan))
    # Reads first, destructive calls last, as the plan's phases say.
    for _, name, operation, template, op_plan in sorted(calls, key=lambda c: c[:2]):
        line = {"method": name, "operation": operation, "status": None, "error": None}
        if op_plan is None:
            line["error"] = "skipped, as the plan says"
        else:
            resource, method = name.split(".")
            try:
                _call(getattr(getattr(client, resource), method), template, op_plan)
                line["status"] = 200
            except LibreFangError as e:
                line["status"] = e.status
                line["error"] = (e.body or str(e))[:300]
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
