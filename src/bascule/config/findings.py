"""The vocabulary shared by the config modules: node paths, findings, bad values.

A *path* names a node of the YAML document the way pydantic's `loc` does:
`("backends", 0, "servers", 1, "port")`, shown to users as
`backends[0].servers[1].port`. A *finding* is a problem located by path only;
the loader turns it into a `ConfigProblem` once it knows the file and line.
"""

from __future__ import annotations

from dataclasses import dataclass

Path = tuple[str | int, ...]


class InvalidValueError(ValueError):
    """A value that cannot be used; `hint` says what to write instead."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class Finding:
    """One problem at `path`.

    The line shown is `line` if given, else the line of `line_path`, else that of
    `path`: the most useful line is not always the one of the node at fault
    ("hash_key is missing" is best shown on the `algorithm: hash` line, a
    duplicate key on the second occurrence).
    """

    path: Path
    message: str
    hint: str = ""
    line_path: Path | None = None
    line: int | None = None


def format_path(path: Path) -> str:
    """`("backends", 0, "servers")` -> `backends[0].servers`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def show(value: object) -> str:
    """A value the way the user wrote it in YAML, short enough for one line."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"' if len(value) <= 60 else f'"{value[:57]}..."'
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return str(value)
