"""The tool runs in plain CPython as it does in the component:
`python3 -m unittest` (see README.md for where talon_sdk comes from)."""

import json
import sys
import tomllib
import unittest
from pathlib import Path

# A checkout's SDK named in pyproject.toml comes first on the path, as in the build.
_talon = tomllib.loads((Path(__file__).parent / "pyproject.toml").read_text()).get("tool", {}).get("talon", {})
if "sdk-path" in _talon:
    sys.path.insert(0, _talon["sdk-path"])

from talon_sdk import ToolError  # noqa: E402

import app  # noqa: E402


class ToolTests(unittest.TestCase):
    def test_greets(self):
        out = app.Tools().invoke("{{name}}", json.dumps({"name": "world", "excitement": 2}))
        self.assertEqual(json.loads(out), {"message": "Hello, world!!"})

    def test_refuses_an_empty_name(self):
        with self.assertRaises(ToolError):
            app.Tools().invoke("{{name}}", json.dumps({"name": " "}))


if __name__ == "__main__":
    unittest.main()
