"""Read YAML text into plain data plus the line of every node.

PyYAML's `safe_load` forgets where things were and silently keeps the last of
two identical keys. We compose the node graph instead and build the data
ourselves, which lets us record a line for every mapping key and sequence item
and report duplicate keys. Merge keys (`<<: *anchor`) are honoured: explicit
keys win over merged ones, as YAML specifies.

Text that cannot be read at all (syntax error, empty file, a top level that is
not a mapping) raises `ConfigError` straight away; anything else is returned as
findings so the loader can report it together with the schema problems.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from bascule.config.findings import Finding, Path
from bascule.errors import ConfigError, ConfigProblem

_MERGE_TAG = "tag:yaml.org,2002:merge"
_START_HINT = "start from examples/minimal.yaml"


class LineMap:
    """The line (1-based) of each node path; unknown paths fall back to their parent."""

    def __init__(self, lines: dict[Path, int]) -> None:
        self._lines = lines

    def written(self, path: Path) -> bool:
        """Was the node at `path` written in the file (not inherited from `defaults:`)?"""
        return path in self._lines

    def line_of(self, path: Path) -> int | None:
        for end in range(len(path), -1, -1):
            line = self._lines.get(path[:end])
            if line is not None:
                return line
        return None


@dataclass(frozen=True)
class YamlDocument:
    data: dict[str, Any]
    lines: LineMap
    findings: list[Finding]


def read_yaml(text: str, filename: str) -> YamlDocument:
    """Parse `text`; raise ConfigError if it is not a YAML mapping."""
    root = _compose(text, filename)
    if root is None:
        raise _unreadable(filename, None, "the file is empty", _START_HINT)
    if not isinstance(root, yaml.MappingNode):
        kind = "a list" if isinstance(root, yaml.SequenceNode) else "a single value"
        raise _unreadable(
            filename,
            _line(root),
            f"the top level is {kind}, not a mapping",
            "the file must start with keys such as frontends: and backends:; " + _START_HINT,
        )
    builder = _Builder()
    data = builder.build(root, ())
    return YamlDocument(data=data, lines=LineMap(builder.lines), findings=builder.findings)


def _compose(text: str, filename: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        # PyYAML splits "while parsing X" (context) from "expected Y" (problem).
        problem = ", ".join(part for part in (error.context, error.problem) if part)
        raise _unreadable(
            filename, line, f"YAML syntax error: {problem}", _syntax_hint(error)
        ) from None
    except yaml.YAMLError as error:
        raise _unreadable(filename, None, f"YAML error: {error}", _START_HINT) from None
    except RecursionError:
        raise _unreadable(filename, None, "the YAML is nested too deeply", _START_HINT) from None


def _syntax_hint(error: yaml.MarkedYAMLError) -> str:
    text = f"{error.context} {error.problem}"
    if "'\\t'" in text:
        return "indent with spaces; YAML does not allow tabs"
    if "alias" in text:
        return 'a value that starts with "*" must be quoted, e.g. bind: "*:8080"'
    return "check the indentation and quoting on this line and the one before"


def _unreadable(filename: str, line: int | None, message: str, hint: str) -> ConfigError:
    return ConfigError(
        [ConfigProblem(file=filename, line=line, path="", message=message, hint=hint)]
    )


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


class _Builder:
    """Turns a composed node graph into dicts, lists and scalars, noting lines."""

    def __init__(self) -> None:
        self.lines: dict[Path, int] = {}
        self.findings: list[Finding] = []
        self._constructor = yaml.SafeLoader("")
        self._in_progress: set[int] = set()
        self._reported_duplicates: set[int] = set()

    def build(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        self.lines[path] = _line(node)
        return self._mapping(node, path)

    def _value(self, node: yaml.Node, path: Path) -> Any:
        if id(node) in self._in_progress:
            self.findings.append(
                Finding(path, "this alias refers to itself", "remove the recursive alias")
            )
            return None
        self._in_progress.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            if isinstance(node, yaml.SequenceNode):
                return self._sequence(node, path)
            return self._scalar(node)
        finally:
            self._in_progress.discard(id(node))

    def _sequence(self, node: yaml.SequenceNode, path: Path) -> list[Any]:
        items = []
        for index, item in enumerate(node.value):
            self.lines[(*path, index)] = _line(item)
            items.append(self._value(item, (*path, index)))
        return items

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, (key_node, value_node) in self._pairs(node, path).items():
            self.lines[(*path, key)] = _line(key_node)
            result[key] = self._value(value_node, (*path, key))
        return result

    def _pairs(self, node: yaml.MappingNode, path: Path) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """The effective key -> (key node, value node) of a mapping, merges applied."""
        explicit: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        merged: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                for merged_key, pair in self._merge_sources(value_node, path).items():
                    merged.setdefault(merged_key, pair)
                continue
            key = self._key(key_node, path)
            if key is None:
                continue
            if key in explicit:
                self._report_duplicate(key, key_node, explicit[key][0], path)
                continue
            explicit[key] = (key_node, value_node)
        return {**merged, **explicit}

    def _merge_sources(self, node: yaml.Node, path: Path) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        pairs: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for source in sources:
            if not isinstance(source, yaml.MappingNode) or id(source) in self._in_progress:
                self.findings.append(
                    Finding(path, "<< must refer to a mapping", "write <<: *anchor_of_a_mapping")
                )
                continue
            self._in_progress.add(id(source))
            try:
                # Earlier sources win over later ones (YAML merge-key rules).
                for key, pair in self._pairs(source, path).items():
                    pairs.setdefault(key, pair)
            finally:
                self._in_progress.discard(id(source))
        return pairs

    def _key(self, key_node: yaml.Node, path: Path) -> str | None:
        if isinstance(key_node, yaml.ScalarNode):
            # The text as written: `on:` must stay "on", not become the boolean True.
            return str(key_node.value)
        self.findings.append(Finding(path, "a key must be plain text", "remove the ? key syntax"))
        return None

    def _report_duplicate(self, key: str, node: yaml.Node, first: yaml.Node, path: Path) -> None:
        # An anchored mapping is built once per alias; report its duplicates once.
        if id(node) in self._reported_duplicates:
            return
        self._reported_duplicates.add(id(node))
        self.findings.append(
            Finding(
                (*path, key),
                f'duplicate key "{key}" (first at line {_line(first)})',
                "remove one of them; YAML would silently keep only the last",
                line=_line(node),
            )
        )

    def _scalar(self, node: yaml.Node) -> Any:
        try:
            return self._constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError):
            # e.g. "2024-13-45" looks like a date to YAML but is not one: keep the text.
            return node.value
