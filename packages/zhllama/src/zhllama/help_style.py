"""Help screens as people read them: `CHECKPOINT` in usage lines, not typer 0.29's
`{CHECKPOINT}`, and no `<bool>` beside on/off flags (a flag takes no value, so a type there reads
as if it wanted one). typer has no setting for either, so the two display methods are wrapped
here, once, for every `zhllama` command; on a typer without them nothing changes."""

from __future__ import annotations

from typing import Any

from typer import core


def _install() -> None:
    option, argument = getattr(core, "TyperOption", None), getattr(core, "TyperArgument", None)
    if option is not None and hasattr(option, "display_type_rich"):
        shown = option.display_type_rich

        def display_type_rich(self: Any, ctx: Any) -> str | None:
            if getattr(self, "is_bool_flag", False) and self.metavar is None:
                return None
            return shown(self, ctx)

        option.display_type_rich = display_type_rich
    if argument is not None and hasattr(argument, "_usage_display_name"):

        def usage_name(self: Any) -> str:
            name = self.display_name_raw
            name = name if self.required else f"[{name}]"
            return name + ("..." if self.nargs != 1 else "")

        argument._usage_display_name = usage_name


_install()
