"""The one exception type for user mistakes.

Anything a user can cause (a missing file, a bad config key, an unknown component name) raises
`ZhllamaError` with a message that names the file or value and says what is wrong. The CLI turns
it into one red line and a non-zero exit code; a traceback means a bug in zhllama.
"""

from __future__ import annotations

import json


class ZhllamaError(Exception):
    """A user-facing error: its message is shown as is, without a traceback."""


def quote_name(name: object) -> str:
    """A file name as error messages show it: as it is when plain, else in double quotes with
    escapes (`"a\\nb.bin"`), so a newline or quote in a name cannot break or blur the line.
    The same rule as the Rust engine's (`zhllama_core::error::quote`)."""
    text = str(name)
    if text and not any(c.isspace() or not c.isprintable() or c in "\"'\\" for c in text):
        return text
    return json.dumps(text, ensure_ascii=False)


def one_line(message: str) -> str:
    """`message` with every control character escaped (`\\n`, `\\t`, `\\x1b`): the user
    sees one line whatever a file name or a library's message holds."""
    return "".join(c if c.isprintable() or c == " " else _escape(c) for c in message)


def _escape(c: str) -> str:
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c) or f"\\x{ord(c):02x}"
