"""`bascule run` starts only on the httptools (llhttp) versions the proxy was verified with."""

from __future__ import annotations

import tomllib
from pathlib import Path

import httptools
import pytest

from bascule.errors import StartupError
from bascule.proxy.parser_version import check_httptools_version, supported_requirement

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


@pytest.mark.parametrize("version", ["0.6.3", "0.6.4", "0.7.1", "0.8.0", "0.9.0", "0.9.12"])
def test_verified_versions_start(version: str) -> None:
    check_httptools_version(version)


@pytest.mark.parametrize(
    "version", ["0.6.1", "0.6.2", "0.5.0", "0.10.0", "1.0.0", "0.9.0rc1", "0.9.0+local", ""]
)
def test_other_versions_are_refused_naming_both_and_the_fix(version: str) -> None:
    with pytest.raises(StartupError) as refused:
        check_httptools_version(version)
    message = str(refused.value)
    assert f"httptools {version} is installed" in message
    assert "0.6.3 up to (not including) 0.10" in message
    assert "pip install 'httptools>=0.6.3,<0.10'" in message


def test_the_installed_httptools_is_supported() -> None:
    check_httptools_version()  # what the tests run with is what `run` accepts
    check_httptools_version(httptools.__version__)


def test_pyproject_declares_the_supported_range() -> None:
    project = tomllib.loads(PYPROJECT.read_text())
    requirement = supported_requirement()
    assert requirement in project["project"]["dependencies"]
    assert requirement in project["build-system"]["requires"]
