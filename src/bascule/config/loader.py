"""Load a configuration file: YAML text in, a frozen `Config` or one `ConfigError` out.

The order is: read the YAML (with the line of every node), check the top-level
keys, validate `defaults:`, merge it into every frontend/backend/server,
validate the result, then run the relational checks (`vrrp:` ones included).
Problems from every stage are collected and raised together, sorted by line,
so that `bascule validate` shows everything that is wrong in one run.
"""

from __future__ import annotations

import os
from pathlib import Path as FilePath
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


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the file at `path`; raise ConfigError listing every problem."""
    filename = os.fspath(path)
    try:
        text = FilePath(filename).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise _file_error(
            filename, f"not UTF-8 text (byte {error.start})", "save it as UTF-8"
        ) from None
    except OSError as error:
        raise _file_error(
            filename,
            f"cannot read the file: {error.strerror or error}",
            "check the path and its permissions",
        ) from None
    return load_config_text(text, filename)


def load_config_text(text: str, filename: str = "<config>") -> Config:
    """Validate configuration `text`; `filename` is only used in messages and `Config.source`."""
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
