"""The `vrrp:` section: keepalived's vocabulary, its defaults, every load-time rejection
with its line, and the checks against a host's interfaces."""

from __future__ import annotations

import re
import textwrap
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_interface
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bascule.config import (
    Config,
    InterfaceAddresses,
    TrackConfig,
    VrrpInstance,
    diff,
    load_config,
    load_config_text,
    vrrp_environment_problems,
)
from bascule.errors import ConfigError, ConfigProblem

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DOCS = ROOT / "docs" / "configuration.md"

# Lines 1-5: a frontend and a backend "web"; the instance starts at line 8.
BASE = """
frontends:
  - {name: web, bind: "*:80", default_backend: web}
backends:
  - name: web
    servers: [{name: s1, address: 10.0.0.1, port: 80}]
vrrp:
  instances:
    - name: VI_1
      interface: eth0
      virtual_router_id: 51
      virtual_ipaddresses: ["198.18.0.100/24"]
"""

# The shape of the section as keepalived users write it, every key set.
FULL = """
frontends:
  - {name: web, bind: "198.18.0.100:80", default_backend: web}
backends:
  - name: web
    servers: [{name: s1, address: 10.0.0.1, port: 80}]
vrrp:
  instances:
    - name: VI_1
      interface: eth0
      virtual_router_id: 51
      priority: 150
      advert_interval: 1s
      version: 3
      virtual_ipaddresses: ["198.18.0.100/24"]
      preempt: true
      preempt_delay: 0s
      accept_mode: true
      unicast_source: 198.18.0.11
      unicast_peers: [198.18.0.12]
      allowed_sources: []
      v3_checksum: pseudo_header
      garp: {count: 5, interval: 0s, repeat_after: 5s, refresh: 0s, refresh_count: 1}
      notify: {master: /m, backup: /b, fault: /f, stop: /s, any: /a}
      track:
        - {backend: web, when: no_server_up, weight: -50}
        - {backend: web, when: degraded, weight: -20}
        - {interface: eth1}
        - {script: /usr/local/bin/chk, interval: 2s, timeout: 1s, weight: -30, rise: 1, fall: 1}
"""


def config_text(text: str) -> str:
    """Dedent a YAML snippet written in a triple-quoted string; line 1 is its first line."""
    return textwrap.dedent(text).lstrip("\n")


def load(text: str) -> Config:
    return load_config_text(config_text(text), "test.yaml")


def with_lines(*lines: str, base: str = BASE) -> str:
    """BASE with `lines` added to its instance, from line 12 on."""
    return config_text(base) + "".join(f"      {line}\n" for line in lines)


def instance(*lines: str) -> VrrpInstance:
    return load(with_lines(*lines)).vrrp.instances[0]


def problems(text: str) -> list[str]:
    """The lines `bascule validate -c test.yaml` would print for `text`."""
    with pytest.raises(ConfigError) as caught:
        load(text)
    return [str(problem) for problem in caught.value.problems]


def assert_reports(text: str, expected_start: str, *fragments: str) -> None:
    """Exactly one reported problem starts with `expected_start` and contains `fragments`."""
    found = [line for line in problems(text) if line.startswith(expected_start)]
    assert len(found) == 1, f"expected one problem starting {expected_start!r}, got {found}"
    for fragment in fragments:
        assert fragment in found[0], found[0]


def second_instance(*lines: str) -> str:
    """BASE with a second instance: `- name: VI_2` at line 12, then `lines` from line 13."""
    text = "".join(f"      {line}\n" for line in lines)
    return config_text(BASE) + "    - name: VI_2\n" + text


# BASE up to its vrrp: section.
WITHOUT_VRRP = config_text(BASE).split("vrrp:")[0]


# --- the examples ----------------------------------------------------------------------------


def test_the_two_example_nodes_form_one_virtual_router() -> None:
    node1 = load_config(EXAMPLES / "cluster-node1.yaml")
    node2 = load_config(EXAMPLES / "cluster-node2.yaml")
    [one], [two] = node1.vrrp.instances, node2.vrrp.instances
    same = ("name", "interface", "virtual_router_id", "version", "advert_interval")
    assert [getattr(one, key) for key in same] == [getattr(two, key) for key in same]
    assert one.virtual_ipaddresses == two.virtual_ipaddresses
    assert one.priority > two.priority  # node 1 is MASTER while both are well
    assert one.unicast_peers == (two.unicast_source,)
    assert two.unicast_peers == (one.unicast_source,)
    assert node1.summary() == "1 frontend, 1 backend, 3 servers, 1 vrrp instance"


def test_the_example_tracking_hands_the_vip_to_the_healthier_node() -> None:
    [one] = load_config(EXAMPLES / "cluster-node1.yaml").vrrp.instances
    [two] = load_config(EXAMPLES / "cluster-node2.yaml").vrrp.instances

    def effective(node: VrrpInstance, failing: set[str]) -> int:
        change = sum(
            entry.priority_change(entry.kind == "backend" and entry.when in failing)
            for entry in node.track
        )
        return min(254, max(1, node.priority + change))

    healthy: set[str] = set()
    degraded, dead = {"degraded"}, {"degraded", "no_server_up"}
    assert effective(one, healthy) > effective(two, healthy)
    assert effective(one, degraded) < effective(two, healthy)
    assert effective(one, dead) < effective(two, healthy)
    assert effective(one, degraded) > effective(two, degraded)
    assert effective(one, healthy) > effective(two, dead)


# --- what an instance looks like once loaded --------------------------------------------------


def test_an_instance_gets_keepalived_defaults_for_everything_left_out() -> None:
    vi = instance()
    assert (vi.priority, vi.version, vi.advert_interval) == (100, 3, 1.0)
    assert (vi.preempt, vi.preempt_delay, vi.accept_mode) == (True, 0.0, True)
    assert (vi.unicast_source, vi.unicast_peers, vi.allowed_sources) == (None, (), ())
    assert vi.v3_checksum == "pseudo_header" and vi.track == ()
    garp = vi.garp
    assert (garp.count, garp.interval, garp.repeat_after, garp.refresh, garp.refresh_count) == (
        5,
        0.0,
        5.0,
        0.0,
        1,
    )
    assert vi.notify.commands("MASTER", ("INSTANCE", "VI_1", "MASTER", "100")) == ()
    assert (vi.unicast, vi.accepted_sources, vi.is_address_owner, vi.family) == (
        False,
        None,
        False,
        4,
    )
    assert vi.virtual_addresses == (IPv4Address("198.18.0.100"),)


def test_every_key_of_keepalived_shape_is_read() -> None:
    [vi] = load(FULL).vrrp.instances
    assert (vi.name, vi.interface, vi.virtual_router_id, vi.priority) == ("VI_1", "eth0", 51, 150)
    assert vi.virtual_ipaddresses == (ip_interface("198.18.0.100/24"),)
    assert vi.unicast_source == ip_address("198.18.0.11")
    assert vi.unicast and vi.accepted_sources == frozenset({ip_address("198.18.0.12")})
    assert [(entry.kind, entry.target, entry.weight) for entry in vi.track] == [
        ("backend", "web", -50),
        ("backend", "web", -20),
        ("interface", "eth1", 0),
        ("script", "/usr/local/bin/chk", -30),
    ]
    script = vi.track[3]
    assert (script.interval, script.timeout, script.rise, script.fall) == (2.0, 1.0, 1, 1)
    assert [str(entry) for entry in vi.track] == [
        "backend web no_server_up (weight -50)",
        "backend web degraded (weight -20)",
        "interface eth1 (FAULT)",
        "script /usr/local/bin/chk every 2s (weight -30)",
    ]


def test_sections_left_empty_mean_their_defaults() -> None:
    vi = instance("garp:", "notify:", "track:", "unicast_peers:", "allowed_sources:")
    assert vi == instance()


def test_a_file_without_vrrp_has_no_instances_and_says_nothing_about_them() -> None:
    config = load(WITHOUT_VRRP)
    assert config.vrrp.instances == ()
    assert config.summary() == "1 frontend, 1 backend, 1 server"
    assert load(WITHOUT_VRRP + "vrrp:\n").vrrp == config.vrrp
    assert load(WITHOUT_VRRP + "vrrp:\n  instances:\n").vrrp == config.vrrp


def test_script_timeout_defaults_to_its_interval() -> None:
    entry = instance("track: [{script: /bin/check, interval: 3s}]").track[0]
    assert (entry.interval, entry.timeout, entry.args) == (3.0, 3.0, ())


@pytest.mark.parametrize(
    ("weight", "failing", "working"),
    [(-50, -50, 0), (20, 0, 20), (0, 0, 0)],
)
def test_track_weights_follow_keepalived(weight: int, failing: int, working: int) -> None:
    entry = TrackConfig(interface="eth1", weight=weight)
    assert (entry.priority_change(True), entry.priority_change(False)) == (failing, working)
    assert entry.faults_when_failing is (weight == 0)


def test_notify_runs_the_state_script_then_any_with_keepalived_arguments() -> None:
    notify = load(FULL).vrrp.instances[0].notify
    args = ("INSTANCE", "VI_1", "FAULT", "150")
    assert notify.commands("FAULT", args) == (("/f",), ("/a", *args))
    assert notify.commands("STOP", args)[0] == ("/s",)


def test_an_allow_list_restricts_sources_in_multicast_mode() -> None:
    vi = instance("allowed_sources: [198.18.0.12, 198.18.0.13]")
    assert not vi.unicast
    assert vi.accepted_sources == frozenset({ip_address("198.18.0.12"), ip_address("198.18.0.13")})


def test_an_ipv6_instance_takes_ipv6_addresses_and_peers() -> None:
    vi = load(
        with_lines(
            "unicast_peers: ['2001:db8::12']",
            base=BASE.replace("198.18.0.100/24", "2001:db8::a/64"),
        )
    ).vrrp.instances[0]
    assert (vi.family, vi.version) == (6, 3)
    assert vi.virtual_addresses == (IPv6Address("2001:db8::a"),)


def test_the_model_is_frozen_and_holds_its_rules_in_code_too() -> None:
    vi = instance()
    with pytest.raises(ValidationError):
        vi.priority = 200
    with pytest.raises(ValidationError, match="VRRPv2"):
        VrrpInstance(
            name="VI_1",
            interface="eth0",
            virtual_router_id=51,
            version=2,
            advert_interval=0.5,
            virtual_ipaddresses=(ip_interface("198.18.0.100/24"),),
        )


def test_config_remembers_where_each_instance_was_written() -> None:
    config = load(BASE)
    assert config.line_of(("vrrp", "instances", 0, "interface")) == 9
    assert config == load(BASE.replace("vrrp:", "\n\nvrrp:"))  # layout is not a setting


# --- advert intervals ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "written", "on_wire"),
    [
        (3, "10ms", 1),
        (3, "100ms", 10),
        (3, "1s", 100),
        (3, "1.5s", 150),
        (3, "40.95s", 4095),
        (3, 0.3, 30),
        (2, "1s", 1),
        (2, 3, 3),
        (2, "4m", 240),
        (2, "255s", 255),
    ],
)
def test_advert_intervals_each_version_can_carry(
    version: int, written: object, on_wire: int
) -> None:
    vi = instance(f"version: {version}", f"advert_interval: {written}")
    assert vi.advert_interval_on_wire == on_wire


@settings(max_examples=40, deadline=None)
@given(milliseconds=st.integers(1, 41_000))
def test_v3_takes_every_10ms_step_from_10ms_to_40_95s_and_nothing_else(milliseconds: int) -> None:
    text = with_lines(f"advert_interval: {milliseconds}ms")
    if milliseconds % 10 == 0 and milliseconds <= 40_950:
        assert load(text).vrrp.instances[0].advert_interval_on_wire == milliseconds // 10
    else:
        [problem] = problems(text)
        assert problem.startswith("test.yaml:12: vrrp.instances[0].advert_interval: ")


# --- every load-time problem, with its line and path ---------------------------------------


P = "test.yaml:{}: vrrp.instances[{}]."

REJECTED = [
    pytest.param(
        second_instance(
            "interface: eth0", "virtual_router_id: 51", "virtual_ipaddresses: [198.18.0.101/24]"
        ),
        P.format(14, 1)
        + "virtual_router_id: virtual_router_id 51 is already used on eth0 "
        + 'by vrrp instance "VI_1" (line 10)',
        ["its own ID"],
        id="duplicate-vrid-on-one-interface",
    ),
    pytest.param(
        second_instance(
            "interface: eth0", "virtual_router_id: 52", "virtual_ipaddresses: [198.18.0.101/24]"
        ).replace("name: VI_2", "name: VI_1"),
        P.format(12, 1) + 'name: duplicate vrrp instance name "VI_1" (first used at line 8)',
        [],
        id="duplicate-instance-name",
    ),
    pytest.param(
        with_lines("priority: 0"),
        P.format(12, 0) + "priority: 0 is reserved: a MASTER sends priority 0 when it stops",
        ["1-254", "255"],
        id="priority-0",
    ),
    pytest.param(
        with_lines("priority: 256"),
        P.format(12, 0) + "priority: 256 is out of range 1-255",
        [],
        id="priority-256",
    ),
    pytest.param(
        with_lines("version: 2", "advert_interval: 1.5s"),
        P.format(13, 0)
        + "advert_interval: 1500ms is not a whole number of seconds from 1s to 255s",
        ["version: 3"],
        id="v2-fraction-of-a-second",
    ),
    pytest.param(
        with_lines("version: 2", "advert_interval: 256s"),
        P.format(13, 0) + "advert_interval: 256s is not a whole number of seconds from 1s to 255s",
        [],
        id="v2-too-long",
    ),
    pytest.param(
        with_lines("advert_interval: 5ms"),
        P.format(12, 0) + "advert_interval: 5ms is outside 10ms-40.95s",
        [],
        id="v3-below-10ms",
    ),
    pytest.param(
        with_lines("advert_interval: 41s"),
        P.format(12, 0) + "advert_interval: 41s is outside 10ms-40.95s",
        [],
        id="v3-above-40.95s",
    ),
    pytest.param(
        with_lines("advert_interval: 105ms"),
        P.format(12, 0) + "advert_interval: 105ms is not a whole number of centiseconds",
        ["e.g. 100ms"],
        id="v3-not-centiseconds",
    ),
    pytest.param(
        with_lines("version: 4"),
        P.format(12, 0) + "version: 4 is not 2 or 3",
        ["keepalived"],
        id="version-4",
    ),
    pytest.param(
        with_lines("version: 2", base=BASE.replace("198.18.0.100/24", "2001:db8::a/64")),
        P.format(11, 0) + "virtual_ipaddresses[0]: 2001:db8::a/64 is IPv6, and VRRPv2",
        ["version: 3"],
        id="ipv6-with-v2",
    ),
    pytest.param(
        config_text(BASE).replace('["198.18.0.100/24"]', '["198.18.0.100/24", "2001:db8::a/64"]'),
        P.format(11, 0) + "virtual_ipaddresses[1]: 2001:db8::a/64 is IPv6, and 198.18.0.100/24",
        ["one instance per address family"],
        id="mixed-families",
    ),
    pytest.param(
        config_text(BASE).replace("198.18.0.100/24", "198.18.0.300/24"),
        P.format(11, 0) + 'virtual_ipaddresses[0]: "198.18.0.300/24" is not an IP address',
        [],
        id="vip-not-cidr",
    ),
    pytest.param(
        config_text(BASE).replace("198.18.0.100/24", "198.18.0.100"),
        P.format(11, 0) + 'virtual_ipaddresses[0]: "198.18.0.100" has no prefix length',
        ['"198.18.0.100/24"', '"198.18.0.100/32"'],
        id="vip-without-prefix",
    ),
    pytest.param(
        config_text(BASE).replace("198.18.0.100/24", "198.18.0.0/24"),
        P.format(11, 0) + 'virtual_ipaddresses[0]: "198.18.0.0/24" is the network address',
        [],
        id="vip-network-address",
    ),
    pytest.param(
        config_text(BASE).replace("198.18.0.100/24", "198.18.0.100/24 dev eth1"),
        P.format(11, 0) + 'virtual_ipaddresses[0]: "198.18.0.100/24 dev eth1" has words after',
        ["not supported"],
        id="vip-with-keepalived-options",
    ),
    pytest.param(
        config_text(BASE).replace(
            '["198.18.0.100/24"]', "\n        - 198.18.0.100/24\n        - 198.18.0.100/25"
        ),
        P.format(13, 0) + "virtual_ipaddresses[1]: 198.18.0.100 is listed twice (first at line 12)",
        [],
        id="vip-twice-in-one-instance",
    ),
    pytest.param(
        second_instance(
            "interface: eth1", "virtual_router_id: 52", "virtual_ipaddresses: [198.18.0.100/24]"
        ),
        P.format(15, 1)
        + "virtual_ipaddresses[0]: 198.18.0.100 is already a virtual address "
        + 'of vrrp instance "VI_1" (line 11)',
        [],
        id="vip-in-two-instances",
    ),
    pytest.param(
        with_lines("track: [{backend: wbe, weight: -50}]"),
        P.format(12, 0) + 'track[0].backend: no backend named "wbe"',
        ['did you mean "web"?'],
        id="track-missing-backend",
    ),
    pytest.param(
        with_lines("notify: {master: scripts/master.sh}"),
        P.format(12, 0) + 'notify.master: "scripts/master.sh" is not an absolute path',
        ["PATH is not searched"],
        id="notify-relative-path",
    ),
    pytest.param(
        with_lines("unicast_source: 198.18.0.11", "unicast_peers: [198.18.0.12, 198.18.0.11]"),
        P.format(13, 0) + "unicast_peers[1]: 198.18.0.11 is this node's own unicast_source",
        ["not itself"],
        id="peers-contain-source",
    ),
    pytest.param(
        with_lines("unicast_peers:", "  - 198.18.0.12", "  - 198.18.0.12"),
        P.format(14, 0) + "unicast_peers[1]: 198.18.0.12 is listed twice (first at line 13)",
        [],
        id="peer-twice",
    ),
    pytest.param(
        with_lines("unicast_source: 198.18.0.100"),
        P.format(12, 0) + "unicast_source: 198.18.0.100 is one of the virtual addresses",
        [],
        id="source-is-a-vip",
    ),
    pytest.param(
        with_lines("unicast_peers: ['2001:db8::12']"),
        P.format(12, 0)
        + "unicast_peers[0]: 2001:db8::12 is IPv6, and the virtual addresses are IPv4",
        [],
        id="peer-of-the-other-family",
    ),
    pytest.param(
        with_lines("unicast_peers: [198.18.0.12/32]"),
        P.format(12, 0) + 'unicast_peers[0]: "198.18.0.12/32" has a prefix length',
        ["write the address alone: 198.18.0.12"],
        id="peer-with-prefix",
    ),
    pytest.param(
        with_lines("unicast_peers: [198.18.0.12]", "allowed_sources: [198.18.0.13]"),
        P.format(13, 0) + "allowed_sources: allowed_sources is for multicast mode",
        [],
        id="allow-list-in-unicast-mode",
    ),
    pytest.param(
        with_lines("preempt: false", "preempt_delay: 10s"),
        P.format(13, 0) + "preempt_delay: preempt_delay only applies with preempt: true",
        [],
        id="preempt-delay-without-preempt",
    ),
    pytest.param(
        with_lines("version: 2", "v3_checksum: as_v2"),
        P.format(13, 0) + "v3_checksum: v3_checksum only applies to version 3",
        [],
        id="v3-checksum-on-v2",
    ),
    pytest.param(
        with_lines("v3_checksum: old_unicast_checksum"),
        P.format(12, 0) + 'v3_checksum: "old_unicast_checksum" is not one of',
        ['is called "old_unicast" here'],
        id="v3-checksum-keepalived-name",
    ),
    pytest.param(
        with_lines("priority: 255", "track: [{interface: eth1, weight: -10}]"),
        P.format(13, 0) + "track[0]: weight -10 has no effect: the address owner",
        ["weight 0"],
        id="owner-with-weights",
    ),
    pytest.param(
        with_lines("track: [{interface: eth1, interval: 2s}]"),
        P.format(12, 0) + "track[0].interval: interval only applies to a script entry",
        ["remove interval"],
        id="script-key-on-interface-entry",
    ),
    pytest.param(
        with_lines("track: [{script: /bin/check, when: degraded}]"),
        P.format(12, 0) + "track[0].when: when only applies to a backend entry",
        [],
        id="when-on-script-entry",
    ),
    pytest.param(
        with_lines("track: [{backend: web, interface: eth1}]"),
        P.format(12, 0) + "track[0]: one entry tracks both backend and interface",
        [],
        id="two-targets-in-one-entry",
    ),
    pytest.param(
        with_lines("track: [{weight: -10}]"),
        P.format(12, 0) + "track[0]: a track entry needs backend, interface or script",
        [],
        id="track-entry-without-target",
    ),
    pytest.param(
        with_lines("track:", "  - {interface: eth1}", "  - {interface: eth1, weight: -5}"),
        P.format(14, 0) + "track[1]: tracks interface eth1 again (first at line 13)",
        [],
        id="tracked-twice",
    ),
    pytest.param(
        with_lines("track: [{script: /bin/check, weight: 255}]"),
        P.format(12, 0) + "track[0].weight: 255 is outside -254 to 254",
        ["FAULT"],
        id="weight-out-of-range",
    ),
    pytest.param(
        with_lines("track: [{script: /bin/check, interval: 1s, timeout: 2s}]"),
        P.format(12, 0) + "track[0].timeout: 2s is longer than interval 1s",
        [],
        id="script-timeout-over-interval",
    ),
    pytest.param(
        with_lines("garp: {count: 0}"),
        P.format(12, 0) + "garp.count: 0 is below the minimum of 1",
        [],
        id="garp-count-0",
    ),
    pytest.param(
        config_text(BASE).replace("interface: eth0", "interface: eth0:1"),
        P.format(9, 0) + 'interface: "eth0:1" is an address label, not an interface',
        ["(eth0)"],
        id="interface-label",
    ),
    pytest.param(
        config_text(BASE).replace("interface: eth0", "interface: a-very-long-name0"),
        P.format(9, 0) + 'interface: "a-very-long-name0" is longer than 15 bytes',
        [],
        id="interface-name-too-long",
    ),
    pytest.param(
        config_text(BASE).replace("      virtual_router_id: 51\n", ""),
        "test.yaml:8: vrrp.instances[0].virtual_router_id: required but missing",
        ["1-255"],
        id="missing-vrid",
    ),
    pytest.param(
        config_text(BASE).replace("virtual_router_id: 51", "virtual_router_id: 256"),
        P.format(10, 0) + "virtual_router_id: 256 is out of range 1-255",
        ["the same on every node"],
        id="vrid-256",
    ),
    pytest.param(
        with_lines("state: MASTER"),
        P.format(12, 0) + 'state: unknown key "state"',
        ["higher priority"],
        id="keepalived-state",
    ),
    pytest.param(
        with_lines("advert_int: 1"),
        P.format(12, 0) + 'advert_int: unknown key "advert_int"',
        ['"advert_int" is called "advert_interval" here'],
        id="keepalived-advert-int",
    ),
    pytest.param(
        with_lines("nopreempt: true"),
        P.format(12, 0) + 'nopreempt: unknown key "nopreempt"',
        ['"preempt: false"'],
        id="keepalived-nopreempt",
    ),
    pytest.param(
        config_text(BASE).replace("vrrp:", "vrrp_instance: {}\nvrrp:"),
        'test.yaml:6: vrrp_instance: unknown key "vrrp_instance"',
        ['"vrrp.instances"'],
        id="keepalived-vrrp-instance",
    ),
]


@pytest.mark.parametrize(("text", "expected_start", "fragments"), REJECTED)
def test_each_problem_is_reported_at_its_line_and_path(
    text: str, expected_start: str, fragments: list[str]
) -> None:
    assert_reports(text, expected_start, *fragments)


def test_accept_mode_false_is_refused_when_a_frontend_binds_the_vip() -> None:
    text = with_lines("accept_mode: false").replace('"*:80"', '"198.18.0.100:80"')
    assert_reports(
        text,
        P.format(12, 0) + 'accept_mode: false drops the traffic of frontend "web" '
        "(bind 198.18.0.100:80, line 2)",
        "the default is true",
    )


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(with_lines("priority: 255", "preempt: false"), id="owner-without-preempt"),
        pytest.param(
            second_instance(
                "interface: eth1", "virtual_router_id: 51", "virtual_ipaddresses: [198.18.1.1/24]"
            ),
            id="same-vrid-on-another-interface",
        ),
        pytest.param(
            second_instance(
                "interface: eth0",
                "virtual_router_id: 51",
                "virtual_ipaddresses: ['2001:db8::a/64']",
            ),
            id="same-vrid-for-ipv4-and-ipv6",
        ),
        pytest.param(with_lines("accept_mode: false"), id="accept-false-with-wildcard-frontend"),
        pytest.param(
            with_lines("priority: 255", "accept_mode: false").replace(
                '"*:80"', '"198.18.0.100:80"'
            ),
            id="accept-false-on-the-owner",
        ),
        pytest.param(
            with_lines(
                "track:", "  - {backend: web, weight: -50}", "  - {backend: web, when: degraded}"
            ),
            id="one-backend-two-conditions",
        ),
        pytest.param(
            config_text(BASE).replace("198.18.0.100/24", "198.18.0.1/31"), id="vip-in-a-slash-31"
        ),
    ],
)
def test_settings_that_look_alike_but_work_are_accepted(text: str) -> None:
    assert isinstance(load(text), Config)


def test_frontends_and_backends_stay_required_beside_vrrp() -> None:
    vrrp_only = "vrrp:" + config_text(BASE).split("vrrp:")[1]
    found = problems(vrrp_only)
    assert [line.split(" (")[0] for line in found] == [
        "test.yaml:1: frontends: required but missing",
        "test.yaml:1: backends: required but missing",
    ]


def test_every_problem_of_several_instances_is_reported_in_one_run() -> None:
    text = second_instance(
        "interface: eth0",
        "virtual_router_id: 51",
        "priority: 0",
        "virtual_ipaddresses: [198.18.0.100/24]",
        "track: [{backend: nope}]",
    ).replace(
        'virtual_ipaddresses: ["198.18.0.100/24"]', 'virtual_ipaddresses: ["198.18.0.100/33"]'
    )
    found = problems(text)
    starts = [
        P.format(11, 0) + "virtual_ipaddresses[0]: ",
        P.format(14, 1) + "virtual_router_id: ",
        P.format(15, 1) + "priority: ",
        P.format(17, 1) + "track[0].backend: ",
    ]
    assert len(found) == len(starts), found
    for start in starts:
        assert any(line.startswith(start) for line in found), (start, found)


# Any value a user might type at any VRRP key: loading never crashes, and every
# problem is located, hinted and free of pydantic jargon.
YAML_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)
VRRP_FIELDS = [
    ("instances",),
    ("instances", 0),
    ("instances", 0, "interface"),
    ("instances", 0, "virtual_router_id"),
    ("instances", 0, "priority"),
    ("instances", 0, "version"),
    ("instances", 0, "advert_interval"),
    ("instances", 0, "virtual_ipaddresses"),
    ("instances", 0, "unicast_source"),
    ("instances", 0, "unicast_peers"),
    ("instances", 0, "v3_checksum"),
    ("instances", 0, "garp"),
    ("instances", 0, "notify"),
    ("instances", 0, "track"),
    ("instances", 0, "track", 0, "weight"),
    ("instances", 0, "track", 0, "script"),
]


@pytest.mark.parametrize("field", VRRP_FIELDS, ids=lambda path: ".".join(map(str, path)))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=YAML_VALUES)
def test_any_value_anywhere_gives_located_plain_problems(
    field: tuple[str | int, ...], value: object
) -> None:
    document = yaml.safe_load(FULL)
    node = document["vrrp"]
    for part in field[:-1]:
        node = node[part]
    node[field[-1]] = value
    try:
        load_config_text(yaml.safe_dump(document), "test.yaml")
    except ConfigError as error:
        assert error.problems
        for problem in error.problems:
            assert problem.line is not None, problem
            for jargon in ("pydantic", "type=", "Input should", "[type"):
                assert jargon not in str(problem), problem
            assert str(problem).endswith(")"), f"no hint in {problem}"


# --- checks against the host --------------------------------------------------------------


HOST: InterfaceAddresses = {
    "lo": [ip_interface("127.0.0.1/8")],
    "eth0": [ip_interface("198.18.0.11/24"), ip_interface("fe80::11/64")],
    "eth1": [ip_interface("198.18.1.11/24")],
}


def host_problems(text: str, host: InterfaceAddresses = HOST) -> list[str]:
    return [str(problem) for problem in vrrp_environment_problems(load(text), host)]


def test_a_host_that_fits_has_no_problems() -> None:
    assert (
        host_problems(with_lines("unicast_source: 198.18.0.11", "track: [{interface: eth1}]")) == []
    )
    assert host_problems(WITHOUT_VRRP) == []


def test_a_missing_interface_is_an_error_at_its_line() -> None:
    [problem] = vrrp_environment_problems(
        load(config_text(BASE).replace("interface: eth0", "interface: eht0")), HOST
    )
    assert problem.severity == "error"
    assert str(problem) == (
        'test.yaml:9: vrrp.instances[0].interface: no interface "eht0" on this host '
        '(did you mean "eth0"? interfaces here: eth0, eth1, lo)'
    )


def test_a_missing_tracked_interface_is_an_error() -> None:
    [problem] = host_problems(with_lines("track: [{interface: eth7}]"))
    assert problem.startswith(
        'test.yaml:12: vrrp.instances[0].track[0].interface: no interface "eth7"'
    )


def test_a_vip_outside_every_subnet_of_its_interface_is_a_warning() -> None:
    [problem] = vrrp_environment_problems(
        load(config_text(BASE).replace("198.18.0.100/24", "198.18.5.100/24")), HOST
    )
    assert problem.severity == "warning"
    assert str(problem).startswith(
        "test.yaml:11: vrrp.instances[0].virtual_ipaddresses[0]: warning: 198.18.5.100/24 is "
        "outside every subnet of eth0 (198.18.0.11/24) ("
    )


def test_a_vip_already_on_a_non_owner_is_a_warning_but_not_on_the_owner() -> None:
    host = {**HOST, "eth0": [*HOST["eth0"], ip_interface("198.18.0.100/24")]}
    [problem] = vrrp_environment_problems(load(BASE), host)
    assert (problem.severity, problem.path) == (
        "warning",
        "vrrp.instances[0].virtual_ipaddresses[0]",
    )
    assert "198.18.0.100 is already on eth0" in problem.message
    assert host_problems(with_lines("priority: 255"), host) == []


def test_an_interface_without_an_address_to_send_from_is_an_error() -> None:
    host = {**HOST, "eth0": [ip_interface("198.18.0.100/24")]}  # only a leftover VIP
    found = host_problems(BASE, host)
    assert any(
        line.startswith(
            "test.yaml:9: vrrp.instances[0].interface: eth0 has no IPv4 address to send"
        )
        for line in found
    ), found


def test_ipv6_adverts_need_a_link_local_address() -> None:
    text = config_text(BASE).replace("198.18.0.100/24", "2001:db8::a/64")
    assert host_problems(text, {**HOST, "eth0": [ip_interface("2001:db8::11/64")]}) == [
        "test.yaml:9: vrrp.instances[0].interface: eth0 has no IPv6 link-local address to send "
        "adverts from (RFC 5798 §5.1.2.1) (enable IPv6 on eth0; it then gets an fe80:: address)"
    ]
    both = [ip_interface("2001:db8::11/64"), ip_interface("fe80::11/64")]
    assert host_problems(text, {**HOST, "eth0": both}) == []


def test_a_unicast_source_the_host_does_not_have_is_an_error() -> None:
    [problem] = host_problems(with_lines("unicast_source: 198.18.0.99"))
    assert problem.startswith(
        "test.yaml:12: vrrp.instances[0].unicast_source: 198.18.0.99 is not an address of this host"
    )
    assert host_problems(with_lines("unicast_source: 198.18.1.11")) == []  # on another interface


def test_host_problems_of_a_config_built_in_code_have_no_line() -> None:
    config = load(BASE)
    built = Config(frontends=config.frontends, backends=config.backends, vrrp=config.vrrp)
    [problem] = vrrp_environment_problems(built, {"lo": [ip_interface("127.0.0.1/8")]})
    assert problem.line is None and str(problem).startswith("<config>: vrrp.instances[0].interface")


def test_problems_are_errors_unless_marked_and_warnings_say_so() -> None:
    plain = ConfigProblem("f.yaml", 3, "a.b", "bad", "fix it")
    assert plain.severity == "error" and str(plain) == "f.yaml:3: a.b: bad (fix it)"
    warning = ConfigProblem("f.yaml", 3, "a.b", "odd", "look", severity="warning")
    assert str(warning) == "f.yaml:3: a.b: warning: odd (look)"


# --- reload ----------------------------------------------------------------------------------


def test_diff_lists_instances_added_removed_and_changed() -> None:
    old = load(
        second_instance(
            "interface: eth1", "virtual_router_id: 52", "virtual_ipaddresses: [198.18.1.100/24]"
        )
    )
    new = load(
        with_lines(
            "priority: 150",
            "advert_interval: 100ms",
            "garp: {count: 3}",
            "track: [{interface: eth1, weight: -20}]",
        )
        + "    - {name: VI_3, interface: eth0, virtual_router_id: 53,\n"
        + "       virtual_ipaddresses: [198.18.0.103/24]}\n"
    )
    assert diff(old, new) == [
        "vrrp instance VI_1 changed: priority 100 -> 150; advert_interval 1s -> 100ms; "
        "garp.count 5 -> 3; track [] -> [interface eth1 (weight -20)]",
        "vrrp instance VI_3 added (eth0 vrid 53 priority 100, 198.18.0.103/24)",
        "vrrp instance VI_2 removed",
    ]


# --- the documentation ------------------------------------------------------------------------


def _vrrp_docs() -> str:
    text = DOCS.read_text()
    return text[text.index("\n## VRRP") :]


def _yaml_blocks(markdown: str) -> list[str]:
    return [block.split("```")[0] for block in markdown.split("```yaml\n")[1:]]


@pytest.mark.parametrize("block", _yaml_blocks(_vrrp_docs()))
def test_every_vrrp_example_in_the_docs_is_valid(block: str) -> None:
    if "frontends" not in yaml.safe_load(block):
        block = (
            WITHOUT_VRRP.replace("name: web\n", "name: app\n").replace(
                "default_backend: web", "default_backend: app"
            )
            + block
        )
    assert isinstance(load_config_text(block), Config)


KEEPALIVED_KEYWORDS = (
    "vrrp_instance",
    "virtual_router_id",
    "priority",
    "advert_int",
    "vrrp_version",
    "virtual_ipaddress",
    "nopreempt",
    "preempt_delay",
    "accept",
    "unicast_src_ip",
    "unicast_peer",
    "garp_master_delay",
    "garp_master_repeat",
    "garp_master_refresh",
    "notify_master",
    "notify_backup",
    "notify_fault",
    "notify_stop",
    "notify",
    "track_interface",
    "track_script",
    "weight",
)


def test_docs_give_the_keepalived_name_of_every_keyword() -> None:
    docs = _vrrp_docs()
    for keyword in KEEPALIVED_KEYWORDS:
        assert re.search(rf"`{keyword}\b", docs), keyword
    for key in VrrpInstance.model_fields:
        assert f"`{key}`" in docs, key
