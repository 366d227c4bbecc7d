"""{{description}}"""

from typing import Annotated

from talon_sdk import Plugin, ToolError, log

plugin = Plugin()


@plugin.tool
def {{name}}(
    name: Annotated[str, "Who or what to greet."],
    excitement: Annotated[int, "How many exclamation marks to add (0 to 5)."] = 1,
) -> dict:
    """{{description}}"""
    if not name.strip():
        raise ToolError.invalid_arguments("name must not be empty")
    if not 0 <= excitement <= 5:
        raise ToolError.invalid_arguments("excitement must be between 0 and 5")
    log.info(f"greeting {name}")
    return {"message": f"Hello, {name}" + "!" * excitement}


# componentize-py instantiates the class named after the exported interface.
Tools = plugin.tools_export()
{{skill_export}}
