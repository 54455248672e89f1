"""Read YAML text into plain data plus the line of every node.

PyYAML's `safe_load` forgets where things were and silently keeps the last of
two identical keys. We compose the node graph instead and build the data
ourselves, which lets us record a line for every mapping key and sequence item
and report duplicate keys. Merge keys (`<<: *anchor`) are honoured: explicit
keys win over merged ones, as YAML specifies.

Text that cannot be read at all (syntax error, empty file, a top level that is
not a mapping, aliases that expand past a bound) raises `ConfigError` straight
away; anything else is returned as findings so the loader can report it together
with the schema problems.

Aliases are bounded because each one is built again where it is used: a few
lines of nested aliases ("billion laughs") would otherwise expand to billions
of nodes. Before anything is built, one pass over the composed graph (linear:
each node's expanded size is computed once) adds up what the aliases add, and
the file is refused if that exceeds the nodes the file itself has (or
`ALIAS_NODES_FLOOR`, whichever is more). libyaml (PyYAML's C parser) composes
the graph when PyYAML has it: the pure-Python parser takes seconds on a file of
10,000 servers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from bascule.config.findings import Finding, Path
from bascule.errors import ConfigError, ConfigProblem

_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_START_HINT = "start from examples/minimal.yaml"
# The C loader when PyYAML was built with libyaml (its wheels are), else the Python one.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Aliases may always add this many nodes: an anchor of 20 nodes merged into each
# of 10,000 servers adds 200,000. Building 250,000 nodes takes about half a second.
ALIAS_NODES_FLOOR = 250_000
_ALIAS = re.compile(r"\*[^\s,\[\]{}]+")


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
    try:
        _check_alias_expansion(root, text, filename)
        builder = _Builder()
        data = builder.build(root, ())
    except RecursionError:
        raise _too_deep(filename) from None
    return YamlDocument(data=data, lines=LineMap(builder.lines), findings=builder.findings)


def _compose(text: str, filename: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = _syntax_problem(error, text)
        raise _unreadable(
            filename, line, f"YAML syntax error: {problem}", _syntax_hint(problem)
        ) from None
    except yaml.YAMLError as error:
        raise _unreadable(filename, None, f"YAML error: {error}", _START_HINT) from None
    except RecursionError:
        raise _too_deep(filename) from None


def _syntax_problem(error: yaml.MarkedYAMLError, text: str) -> str:
    """ "while parsing X, expected Y", with the character or alias libyaml leaves out."""
    problem = error.problem or ""
    written = _text_at(text, error.problem_mark)
    if problem == "found character that cannot start any token" and written:
        problem = f"found character {written[0]!r} that cannot start any token"
    alias = _ALIAS.match(written)
    if problem == "found undefined alias" and alias:
        problem = f"found undefined alias {alias.group()[1:]!r}"
    # PyYAML splits "while parsing X" (context) from "expected Y" (problem).
    return ", ".join(part for part in (error.context, problem) if part)


def _text_at(text: str, mark: yaml.Mark | None) -> str:
    """The rest of the line at `mark`."""
    if mark is None:
        return ""
    lines = text.splitlines()
    return lines[mark.line][mark.column :] if mark.line < len(lines) else ""


def _syntax_hint(problem: str) -> str:
    if "'\\t'" in problem:
        return "indent with spaces; YAML does not allow tabs"
    if "alias" in problem:
        return 'a value that starts with "*" must be quoted, e.g. bind: "*:8080"'
    return "check the indentation and quoting on this line and the one before"


def _too_deep(filename: str) -> ConfigError:
    return _unreadable(filename, None, "the YAML is nested too deeply", _START_HINT)


class _PastTheLimitError(Exception):
    """Raised at the alias use (the `index`th child of `parent`) that crosses the limit."""

    def __init__(self, parent: yaml.CollectionNode, index: int) -> None:
        super().__init__()
        self.parent = parent
        self.index = index


def _check_alias_expansion(root: yaml.MappingNode, text: str, filename: str) -> None:
    """Refuse a file whose aliases would expand it past its own size (or the floor)."""
    sizes = _ExpandedSizes()
    sizes.of(root)
    limit = max(ALIAS_NODES_FLOOR, sizes.written)
    if sizes.added <= limit:
        return
    try:
        _ExpandedSizes(limit).of(root)  # again, to stop at the alias that crosses the limit
    except _PastTheLimitError as past:
        line: int | None = _alias_line(text, past.parent, past.index)
    else:  # pragma: no cover - the second pass sees what the first one saw
        line = None
    raise _unreadable(
        filename,
        line,
        f"the aliases up to this one expand the file past {limit:,} nodes "
        "(nested aliases, as in a YAML bomb)",
        "write the repeated parts out, or use fewer aliases of aliases",
    )


class _ExpandedSizes:
    """The node count of each collection with its aliases expanded, each computed once.

    Only aliases of collections are counted: an alias of a scalar is one node
    however often it is used, so it cannot make the file grow faster than written.
    With a `limit`, raises _PastTheLimitError at the alias use that takes `added` past it.
    """

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.known: dict[int, int] = {}
        self.written = 0  # nodes in the file, aliases not expanded
        self.added = 0  # nodes the aliases met so far add
        self._in_progress: set[int] = set()

    def of(self, node: yaml.CollectionNode) -> int:
        self._in_progress.add(id(node))
        children = node.value if isinstance(node, yaml.SequenceNode) else _children(node)
        total = 1
        for index, child in enumerate(children):
            if not isinstance(child, yaml.CollectionNode):
                total += 1
                self.written += 1
                continue
            size = self.known.get(id(child))
            if size is not None:  # seen before: this is an alias, built once more
                self.added += size
                if self.limit is not None and self.added > self.limit:
                    raise _PastTheLimitError(node, index)
            elif id(child) in self._in_progress:
                size = 1  # an alias of its own ancestor: the builder reports it
            else:
                size = self.of(child)
            total += size
        self._in_progress.discard(id(node))
        self.known[id(node)] = total
        self.written += 1
        return total


def _children(node: yaml.CollectionNode) -> list[yaml.Node]:
    """A collection's children in the order written (a mapping's keys and values alternate)."""
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return [child for pair in node.value for child in pair]


def _alias_line(text: str, parent: yaml.CollectionNode, index: int) -> int:
    """The line of the alias that is child `index` of `parent`.

    An alias is composed into the node it names, so its marks are those of the
    anchor. Walk the children in order: one that starts after the text read
    so far was written here; any other is an alias, the next "*name" in the text.
    """
    position = parent.start_mark.index
    for number, child in enumerate(_children(parent)[: index + 1]):
        if child.start_mark.index >= position and number < index:
            position = child.end_mark.index
            continue
        alias = _ALIAS.search(text, position)
        if alias is None:
            break
        position = alias.end()
    return text.count("\n", 0, position) + 1


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
        if node.tag == _STR_TAG:
            return node.value  # most scalars: what construct_object would return, faster
        try:
            return self._constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError):
            # e.g. "2024-13-45" looks like a date to YAML but is not one: keep the text.
            return node.value
