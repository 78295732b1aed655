"""The one exception type for user mistakes.

Anything a user can cause (a missing file, a bad config key, an unknown component name) raises
`ZhllamaError` with a message that names the file or value and says what is wrong. The CLI turns
it into one red line and a non-zero exit code; a traceback means a bug in zhllama.
"""

from __future__ import annotations


class ZhllamaError(Exception):
    """A user-facing error: its message is shown as is, without a traceback."""
