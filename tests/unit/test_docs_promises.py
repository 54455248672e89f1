"""The user docs promise nothing that is not built yet.

An admin API and metrics are planned, not built (reload is built: SIGHUP and
`bascule reload`). Every place of the README,
the configuration reference, the examples and the command-line help that names one
must say it is not there yet: the chunk of text (a paragraph, a table row, a YAML
comment) says "yet", or sits under a heading that does ("What Bascule does not do
yet"). docs/design.md, which plans them, is not a promise to users.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from bascule.cli import main

REPO = Path(__file__).resolve().parents[2]
NOT_BUILT = re.compile(r"admin api|\badmin\b.*\benables?\b|metrics|prometheus", re.I)
USER_DOCS = [
    "README.md",
    "docs/configuration.md",
    *sorted(str(path.relative_to(REPO)) for path in (REPO / "examples").glob("*.yaml")),
]


def chunks(name: str, text: str) -> Iterator[tuple[str, str]]:
    """(heading, chunk): in YAML each line; in Markdown each paragraph, list item
    (with its indented lines) and table row, with the heading it is under."""
    if name.endswith(".yaml"):
        yield from (("", line) for line in text.splitlines())
        return
    heading = ""
    chunk: list[str] = []
    for line in [*text.splitlines(), ""]:
        starts_chunk = line.startswith(("#", "|", "* ", "- ")) or not line.strip()
        if starts_chunk and chunk:
            yield heading, " ".join(chunk)
            chunk = []
        if line.startswith("#"):
            heading = line
        elif line.strip():
            chunk.append(line.strip())


def help_texts() -> Iterator[tuple[str, str]]:
    runner = CliRunner()
    for command in ([], ["run"], ["validate"], ["reload"], ["demo"]):
        result = runner.invoke(main, [*command, "--help"])
        assert result.exit_code == 0, result.output
        yield f"bascule {' '.join(command)} --help", result.output


def promises() -> Iterator[tuple[str, str, str]]:
    for name in USER_DOCS:
        for heading, chunk in chunks(name, (REPO / name).read_text(encoding="utf-8")):
            yield name, heading, chunk
    for name, text in help_texts():
        yield name, "", " ".join(text.split())


@pytest.mark.parametrize("where", [*USER_DOCS, "help"])
def test_what_is_not_built_is_said_to_be_not_there_yet(where: str) -> None:
    found = [
        f"{name}: {chunk}"
        for name, heading, chunk in promises()
        if (name == where or (where == "help" and name.startswith("bascule")))
        and NOT_BUILT.search(chunk)
        and "yet" not in chunk.lower()
        and "yet" not in heading.lower()
    ]
    assert not found, "\n".join(found)
