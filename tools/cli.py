"""What every tool does with bad input: one line on stderr and exit code 2, before any work.

    python tools/export.py --version=x
    export.py: error: flag --version=x: invalid literal for int() with base 10: 'x' ...

Shared by every tool in this folder (each imports it as a sibling module). It imports
absl only, so a bad flag is refused before TensorFlow loads.
"""

from __future__ import annotations

import sys

from absl import flags

#: The exit code of a usage error: a flag, file or value that cannot work.
USAGE_ERROR = 2


class UsageError(ValueError):
    """A flag or input that cannot work: one line on stderr, exit code 2, nothing written."""


def one_line(text: object) -> str:
    """`text` with every run of whitespace, newlines included, made one space."""
    return " ".join(str(text).split())


def usage_error(tool: str, message: object) -> int:
    """Writes `<tool>: error: <message>` as one line on stderr.

    Args:
        tool: the tool's file name, the first word of the line.
        message: what was wrong: the flag, file or value, and what was expected.

    Returns:
        `USAGE_ERROR`, for `return usage_error(...)` from a tool's `main`.
    """
    sys.stderr.write(f"{tool}: error: {one_line(message)}\n")
    return USAGE_ERROR


def flags_parser(
    tool: str,
    flag_values: flags.FlagValues = flags.FLAGS,
    hint: str = "",
    required: tuple[str, ...] = (),
):
    """An `app.run(flags_parser=...)` that exits 2 with one line on a flag it cannot parse.

    absl's own parser exits 1 and prints the whole usage text. Required flags are
    checked here, after parsing, instead of with `flags.mark_flags_as_required`:
    absl's validators live on the process-wide `FLAGS`, so a second tool imported
    into the same process (the tests do) would demand the first one's flags.

    Args:
        tool: the tool's file name, the first word of the error line.
        flag_values: the flags to parse into.
        hint: appended to the error line (e.g. where the flags are listed).
        required: names of flags that must be given a value (a flagfile counts).

    Returns:
        A function `argv -> remaining argv`.
    """

    def parse(argv: list[str]) -> list[str]:
        try:
            remaining = flag_values(argv)
        except flags.Error as error:
            sys.exit(usage_error(tool, f"{error}{hint}"))
        missing = [f"--{name}" for name in required if flag_values[name].value in (None, "")]
        if missing:
            sys.exit(usage_error(tool, f"{', '.join(missing)} must be given{hint}"))
        return remaining

    return parse
