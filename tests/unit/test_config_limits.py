"""The bounds on configuration input: file kind and size, alias expansion, nesting.

The subprocess tests of the same bounds (with a memory limit) are in
tests/integration/test_config_bombs.py; these pin the details of the messages.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bascule.config import load_config, load_config_text
from bascule.config.loader import MAX_CONFIG_BYTES
from bascule.config.yamlsource import ALIAS_NODES_FLOOR
from bascule.errors import ConfigError

HEAD = """\
frontends:
  - {name: web, bind: "127.0.0.1:8080", default_backend: app}
backends:
  - name: app
    servers:
      - {name: s1, address: 10.0.0.1, port: 8000}
"""


def problems(text: str, filename: str = "bascule.yaml") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, filename)
    return [str(problem) for problem in caught.value.problems]


def test_nested_aliases_are_refused_at_the_line_of_the_alias_that_goes_past_the_bound() -> None:
    # Block style: each alias on its own line, the siblings before it aliases too.
    levels = ["l0: &l0 [" + ", ".join(["x"] * 30) + "]"]
    for level in range(1, 6):
        items = "".join(f"    - *l{level - 1}\n" for _ in range(30))
        levels.append(f"l{level}: &l{level}\n{items}".rstrip("\n"))
    text = HEAD + "\n".join(levels) + "\n"
    [problem] = problems(text)
    # l0 = 31 nodes, l1 = 931, l2 = 27,931: the bound is crossed in l3, at its
    # 8th alias (30*31 + 30*931 + 8*27,931 = 252,308 > 250,000).
    first_l3_alias = text.splitlines().index("l3: &l3") + 2
    assert problem.startswith(f"bascule.yaml:{first_l3_alias + 7}: the aliases up to this one")
    assert f"past {ALIAS_NODES_FLOOR:,} nodes" in problem
    assert "YAML bomb" in problem


def test_aliases_through_merge_keys_count_too() -> None:
    base = "base: &base {" + ", ".join(f"k{i}: [1, 2, 3]" for i in range(50)) + "}\n"
    bomb = "".join(f"m{i}: {{<<: *base}}\n" for i in range(1200))
    [problem] = problems(HEAD + base + bomb)
    # base has 251 nodes: the 997th merge goes past the bound (997 * 251 = 250,247).
    assert problem.startswith(f"bascule.yaml:{len(HEAD.splitlines()) + 1 + 997}: the aliases")


def test_an_anchor_merged_into_each_of_10_000_servers_loads() -> None:
    servers = "".join(
        f"      - {{<<: *server, name: s{i}, address: 10.0.{i >> 8}.{i & 255}}}\n"
        for i in range(10_000)
    )
    text = (
        "frontends:\n  - {name: web, bind: 127.0.0.1:8080, default_backend: app}\n"
        "backends:\n  - name: app\n    check: {type: tcp}\n    servers:\n"
        "      - &server {name: s, address: 10.1.0.1, port: 8000, weight: 2,"
        " check: &check {interval: 3s, rise: 2, fall: 3}}\n" + servers
    )
    config = load_config_text(text)
    assert len(config.backends[0].servers) == 10_001
    assert config.backends[0].servers[-1].check.interval == 3.0


def test_an_alias_of_its_own_ancestor_is_reported_not_expanded() -> None:
    assert "bascule.yaml:7: x.a: this alias refers to itself (remove the recursive alias)" in (
        problems(HEAD + "x: &x {a: *x}\n")
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("frontends:\n\t- name: web\n", "found character '\\t' that cannot start any token"),
        ("frontends: *nowhere\n", "found undefined alias 'nowhere'"),
    ],
)
def test_syntax_errors_name_what_was_found(text: str, expected: str) -> None:
    [problem] = problems(text)
    assert expected in problem


@pytest.mark.parametrize("style", ["block", "flow"])
def test_nesting_deeper_than_python_builds_is_one_clear_problem(style: str) -> None:
    depth = 900  # libyaml composes up to 1,000 levels
    if style == "block":
        text = "frontends:\n" + "".join(" " * (level + 2) + "-\n" for level in range(depth))
    else:
        text = "frontends: " + "[" * depth + "]" * depth + "\n"
    assert problems(text) == [
        "bascule.yaml: the YAML is nested too deeply (start from examples/minimal.yaml)"
    ]


def file_problem(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [problem] = caught.value.problems
    return str(problem)


def test_a_file_over_the_size_limit_is_refused_with_its_size(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(HEAD.encode() + b"#" * MAX_CONFIG_BYTES)
    size = path.stat().st_size
    assert file_problem(path) == (
        f"{path}: the file is too large: {size:,} bytes, and the limit is 4,194,304 bytes "
        "(4 MiB) (check the path: even 10,000 servers take well under 1 MiB)"
    )


def test_a_file_at_the_size_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "full.yaml"
    path.write_bytes(HEAD.encode() + b"#" * (MAX_CONFIG_BYTES - len(HEAD)))
    assert load_config(path).backends[0].servers[0].name == "s1"


def test_a_symlink_to_a_regular_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "real.yaml").write_text(HEAD)
    (tmp_path / "link.yaml").symlink_to(tmp_path / "real.yaml")
    assert load_config(tmp_path / "link.yaml").backends[0].name == "app"


GIVE_A_FILE = "give the path of the YAML configuration file"


@pytest.mark.parametrize(
    ("make", "kind", "hint"),
    [
        (
            lambda path: os.mkfifo(path),
            "a FIFO (named pipe)",
            "write the configuration to a file first; a pipe could block the start forever",
        ),
        (lambda path: path.mkdir(), "a directory", GIVE_A_FILE),
        (lambda path: path.symlink_to("/dev/null"), "a character device", GIVE_A_FILE),
    ],
)
def test_what_is_not_a_regular_file_is_refused_without_being_read(
    tmp_path: Path, make: object, kind: str, hint: str
) -> None:
    path = tmp_path / "bascule.yaml"
    assert callable(make)
    make(path)
    assert file_problem(path) == f"{path}: not a regular file: it is {kind} ({hint})"
