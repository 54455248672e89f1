"""Load a configuration file: YAML text in, a frozen `Config` or one `ConfigError` out.

The order is: read the YAML (with the line of every node), check the top-level
keys, validate `defaults:`, merge it into every frontend/backend/server,
validate the result, then run the relational checks (`vrrp:` ones included).
Problems from every stage are collected and raised together, sorted by line,
so that `bascule validate` shows everything that is wrong in one run.

Only a regular file of at most `MAX_CONFIG_BYTES` is read: a FIFO would block
the start-up forever and `/dev/zero` would fill the memory, so neither is even
opened (and the opened file is checked again, in case the path changed).
"""

from __future__ import annotations

import gc
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError

from bascule.config.checks import cross_check
from bascule.config.findings import Finding, format_path
from bascule.config.merge import merge_backends, merge_frontends
from bascule.config.messages import findings_from, unknown_key
from bascule.config.models import Config, DefaultsSection
from bascule.config.vrrpchecks import vrrp_cross_check
from bascule.config.yamlsource import LineMap, read_yaml
from bascule.errors import ConfigError, ConfigProblem

TOP_LEVEL_KEYS = ("global", "defaults", "frontends", "backends", "vrrp")
# Ample: 10,000 servers written one per line take about 0.6 MiB.
MAX_CONFIG_BYTES = 4 * 1024 * 1024


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the file at `path`; raise ConfigError listing every problem."""
    filename = os.fspath(path)
    try:
        text = read_config_file(filename).decode("utf-8")
    except UnicodeDecodeError as error:
        raise _file_error(
            filename, f"not UTF-8 text (byte {error.start})", "save it as UTF-8"
        ) from None
    return load_config_text(text, filename)


def read_config_file(filename: str) -> bytes:
    """The bytes of a regular file of at most MAX_CONFIG_BYTES; ConfigError otherwise."""
    try:
        _check_regular_file(filename, os.stat(filename))
        # O_NONBLOCK: if the path became a FIFO since the stat, opening it must not wait.
        descriptor = os.open(filename, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as error:
        raise _cannot_read(filename, error) from None
    try:
        _check_regular_file(filename, os.fstat(descriptor))
        # One byte more than allowed tells a file that grew since the stat.
        with os.fdopen(descriptor, "rb", closefd=False) as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
        _check_size(filename, len(data))
        return data
    except OSError as error:
        raise _cannot_read(filename, error) from None
    finally:
        os.close(descriptor)


def _check_regular_file(filename: str, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise _file_error(
            filename,
            f"not a regular file: it is {_file_kind(info.st_mode)}",
            "write the configuration to a file first; a pipe could block the start forever"
            if stat.S_ISFIFO(info.st_mode)
            else "give the path of the YAML configuration file",
        )
    _check_size(filename, info.st_size)


def _check_size(filename: str, size: int) -> None:
    if size > MAX_CONFIG_BYTES:
        raise _file_error(
            filename,
            f"the file is too large: {size:,} bytes, and the limit is "
            f"{MAX_CONFIG_BYTES:,} bytes ({MAX_CONFIG_BYTES // (1024 * 1024)} MiB)",
            "check the path: even 10,000 servers take well under 1 MiB",
        )


def _file_kind(mode: int) -> str:
    kinds = {
        stat.S_ISDIR: "a directory",
        stat.S_ISFIFO: "a FIFO (named pipe)",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISSOCK: "a socket",
    }
    return next((kind for test, kind in kinds.items() if test(mode)), "not a file")


def _cannot_read(filename: str, error: OSError) -> ConfigError:
    return _file_error(
        filename,
        f"cannot read the file: {error.strerror or error}",
        "check the path and its permissions",
    )


def load_config_text(text: str, filename: str = "<config>") -> Config:
    """Validate configuration `text`; `filename` is only used in messages and `Config.source`."""
    with _collector_paused():
        return _validated(text, filename)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a configuration is built.

    Loading makes hundreds of thousands of objects (nodes, dicts, models) and
    keeps nearly all of them, so the collector would walk them again and again
    for nothing: that halves the time of a file of 10,000 servers. The input is
    bounded (file size, alias expansion), so the garbage left meanwhile is too.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _validated(text: str, filename: str) -> Config:
    document = read_yaml(text, filename)
    data = document.data
    findings = list(document.findings)
    findings += [
        unknown_key((key,), list(TOP_LEVEL_KEYS)) for key in data if key not in TOP_LEVEL_KEYS
    ]
    defaults = _validate_defaults(data.get("defaults"), findings)
    merged = _merged_document(data, defaults)
    config: Config | None = None
    try:
        config = Config.model_validate({**merged, "source": filename})
    except ValidationError as error:
        findings += findings_from(error, Config)
    findings += cross_check(merged.get("frontends"), merged.get("backends"), document.lines)
    findings += vrrp_cross_check(
        merged.get("vrrp"), merged.get("frontends"), merged.get("backends"), document.lines
    )
    findings = _without_inherited_check_problems(findings)
    if findings or config is None:
        raise ConfigError(_problems(findings, filename, document.lines))
    config.remember_lines(document.lines)
    return config


def _validate_defaults(section: object, findings: list[Finding]) -> DefaultsSection:
    """The validated `defaults:`; if it has problems they are reported and none applies."""
    try:
        return DefaultsSection.model_validate({} if section is None else section)
    except ValidationError as error:
        findings += findings_from(error, DefaultsSection, prefix=("defaults",))
        return DefaultsSection()


def _merged_document(data: dict[str, Any], defaults: DefaultsSection) -> dict[str, Any]:
    """The document as `Config` validates it: known keys only, defaults merged in."""
    merged: dict[str, Any] = {}
    if data.get("global") is not None:
        merged["global"] = data["global"]
    if "frontends" in data:
        merged["frontends"] = merge_frontends(data["frontends"], defaults)
    if "backends" in data:
        merged["backends"] = merge_backends(data["backends"], defaults)
    if data.get("vrrp") is not None:
        merged["vrrp"] = data["vrrp"]  # `defaults:` has nothing for it
    return merged


def _without_inherited_check_problems(findings: list[Finding]) -> list[Finding]:
    """Report a problem of a backend's check once, not again on each server that overrides it.

    A server's `check:` is merged over its backend's, so the backend's bad
    timeout is also the bad timeout of every server that only changes `port`.
    """
    backend_problems = {
        (finding.path[1], finding.path[3:], finding.message)
        for finding in findings
        if finding.path[:1] == ("backends",) and finding.path[2:3] == ("check",)
    }
    return [
        finding
        for finding in findings
        if not (
            finding.path[:1] == ("backends",)
            and finding.path[2:3] == ("servers",)
            and finding.path[4:5] == ("check",)
            and (finding.path[1], finding.path[5:], finding.message) in backend_problems
        )
    ]


def _problems(findings: list[Finding], filename: str, lines: LineMap) -> list[ConfigProblem]:
    problems = [
        ConfigProblem(
            file=filename,
            line=finding.line or lines.line_of(finding.line_path or finding.path),
            path=format_path(finding.path),
            message=finding.message,
            hint=finding.hint,
        )
        for finding in findings
    ]
    # A rule can reach the same node twice (through a YAML alias): say it once.
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda problem: problem.line or 0)


def _file_error(filename: str, message: str, hint: str) -> ConfigError:
    return ConfigError(
        [ConfigProblem(file=filename, line=None, path="", message=message, hint=hint)]
    )
