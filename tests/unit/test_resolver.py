"""What the resolver says answered, or was asked, from nsswitch.conf and /etc/hosts."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

import pytest

from bascule.config import load_config_text
from bascule.resolver import LookupOrder, hosts_file_names, lookup_order, resolve_servers


@pytest.mark.parametrize(
    ("text", "order"),
    [
        ("hosts:          files dns\nnetworks: files\n", ("files", "dns")),
        ("# hosts: dns\n", ("files", "dns")),  # no hosts line: glibc's default
        (None, ("files", "dns")),
        (
            "hosts: files mymachines resolve [!UNAVAIL=return] myhostname dns # comment\n",
            ("files", "mymachines", "resolve", "myhostname", "dns"),
        ),
        ("hosts: files mdns4_minimal [NOTFOUND=return] dns\n", ("files", "mdns4_minimal", "dns")),
        ("hosts: files [ NOTFOUND=return ] dns\n", ("files", "dns")),
    ],
)
def test_lookup_order_reads_the_hosts_line(text: str | None, order: tuple[str, ...]) -> None:
    assert lookup_order(text) == order


def test_hosts_file_names_take_every_alias_and_skip_comments() -> None:
    text = (
        "127.0.0.1 localhost\n# 10.0.0.9 old\n10.0.0.5 db.local DB  # main\n\n::1 ip6-localhost\n"
    )
    assert hosts_file_names(text) == {"localhost", "db.local", "db", "ip6-localhost"}


def test_a_name_in_etc_hosts_is_answered_by_it_when_files_come_first() -> None:
    order = LookupOrder(("files", "dns"), frozenset({"db.local"}))
    assert order.answered_by("DB.local") == "/etc/hosts"
    assert order.answered_by("api.example.com") == "DNS (/etc/resolv.conf)"
    assert "/etc/hosts (not listed), then DNS" in order.asked("api.example.com")


def test_sources_before_files_may_have_answered() -> None:
    order = LookupOrder(("resolve", "files", "dns"), frozenset({"db.local"}))
    assert order.answered_by("db.local") == "systemd-resolved or /etc/hosts"
    assert order.answered_by("x.example") == "systemd-resolved or DNS (/etc/resolv.conf)"


CONFIG = """\
frontends: [{name: web, bind: "127.0.0.1:8080", default_backend: app}]
backends:
  - name: app
    servers:
      - {name: a, address: 10.0.0.1, port: 80}
      - {name: b, address: slow.example, port: 80}
      - {name: c, address: fast.example, port: 80}
"""


async def test_a_name_without_answer_in_time_is_a_problem_and_the_others_resolve(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str] = []
    release = threading.Event()

    def getaddrinfo(host: str, *_args: object, **_kwargs: object) -> object:
        asked.append(host)
        if host == "slow.example":
            release.wait(60)  # a silent DNS server; released at the end of the test
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 0))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    config = load_config_text(CONFIG, "t.yaml")
    try:
        found = await resolve_servers(config, timeout=0.5, order=LookupOrder())
    finally:
        release.set()
    assert sorted(asked) == ["fast.example", "slow.example"]  # an IP address is not asked
    assert [str(p) for p in found.problems] == [
        "t.yaml:6: backends[0].servers[1].address: backend app server b: cannot resolve "
        '"slow.example": no answer within 0.5s (is a DNS server in /etc/resolv.conf '
        "unreachable?); asked /etc/hosts (not listed), then DNS (/etc/resolv.conf), as "
        "/etc/nsswitch.conf says (hosts: files dns) (check the name, /etc/hosts and DNS, "
        "or use an IP address)"
    ]
    assert found.addresses == {"app": {"a": "10.0.0.1", "c": "10.0.0.7"}}
    assert [(use.server, answer.source) for use, answer in found.resolved] == [
        ("c", "DNS (/etc/resolv.conf)")
    ]


EXIT_WITH_A_LOOKUP_PENDING = """
import socket, time, uvloop
from bascule.config import load_config_text
from bascule.resolver import LookupOrder, resolve_servers

def silent_dns(host, *args, **kwargs):
    time.sleep(120)  # glibc waiting on a DNS server that never answers

socket.getaddrinfo = silent_dns
config = load_config_text('''%s''', "t.yaml")
found = uvloop.run(resolve_servers(config, timeout=0.2, order=LookupOrder()))
print(len(found.problems), "problems")
"""


def test_a_lookup_past_the_deadline_does_not_hold_the_process_at_exit() -> None:
    done = subprocess.run(
        [sys.executable, "-c", EXIT_WITH_A_LOOKUP_PENDING % CONFIG],
        capture_output=True,
        text=True,
        timeout=60,  # the lookups sleep 120 s: a process waiting for them is killed here
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2 problems"
