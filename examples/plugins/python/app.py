"""The example tool of the Talon plugin guide, in Python: counts the words of
a text and reports the most frequent ones. The same tool exists in Rust
(examples/plugins/rust) and JavaScript (examples/plugins/js)."""

from collections import Counter
from typing import Annotated

from talon_sdk import Plugin, ToolError, log

plugin = Plugin()


@plugin.tool
def word_count_python(
    text: Annotated[str, "The text to count the words of."],
    top: Annotated[int, "How many of the most frequent words to list (at most 100)."] = 3,
) -> dict:
    """Counts the words and characters of a text and lists the most frequent words."""
    if not 0 <= top <= 100:
        raise ToolError.invalid_arguments("top must be between 0 and 100")
    counts = Counter(word for word in map(_normalize, text.split()) if word)
    # Most frequent first; ties in alphabetical order so results are stable.
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
    log.debug(f"counted {sum(counts.values())} words")
    return {
        "words": sum(counts.values()),
        "characters": len(text),
        "top": [{"word": word, "count": count} for word, count in ranked],
    }


def _normalize(word: str) -> str:
    """Lowercases a word and trims the punctuation around it ("Hello," -> "hello")."""
    start, end = 0, len(word)
    while start < end and not word[start].isalnum():
        start += 1
    while end > start and not word[end - 1].isalnum():
        end -= 1
    return word[start:end].lower()


# componentize-py instantiates the class named after the exported interface.
Tools = plugin.tools_export()
