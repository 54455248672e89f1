"""`bascule validate` warns (exit 0) about a server that is its own frontend's bind."""

from __future__ import annotations

import subprocess
import sys
from ipaddress import ip_address
from pathlib import Path

from bascule.cli import _HostAddresses

REPO = Path(__file__).resolve().parents[2]

LOOP = """\
frontends:
  - name: web
    bind: "*:18080"
    default_backend: app
backends:
  - name: app
    servers:
      - {name: s1, address: 127.0.0.1, port: 18080}
"""


def test_validate_warns_about_a_frontend_routed_to_itself_and_still_exits_0(
    tmp_path: Path,
) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text(LOOP)
    result = subprocess.run(
        [sys.executable, "-m", "bascule", "validate", "-c", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"{path}:8: backends[0].servers[0]: warning: 127.0.0.1:18080 is this node's own " in (
        result.stderr
    )
    assert 'frontend "web" (bind 0.0.0.0:18080, line 3)' in result.stderr
    assert f"{path}: OK: 1 frontend, 1 backend, 1 server" in result.stdout


def test_the_host_addresses_are_those_of_its_interfaces() -> None:
    host = _HostAddresses()
    assert host.has(ip_address("127.0.0.1"))
    assert not host.has(ip_address("192.0.2.200"))  # TEST-NET-1, never assigned
