"""The upstream keep-alive pool: LIFO reuse, idle limits, bounded size."""

from __future__ import annotations

from dataclasses import dataclass

from bascule.proxy.pool import UpstreamPool


@dataclass(eq=False)
class Conn:
    closed: bool = False

    def close(self) -> None:
        self.closed = True


def test_most_recently_idled_connection_is_reused_first() -> None:
    pool = UpstreamPool()
    a, b = Conn(), Conn()
    pool.put("web/s1", a, now=1)
    pool.put("web/s1", b, now=2)
    assert pool.get("web/s1", now=3) is b
    assert pool.get("web/s1", now=3) is a
    assert pool.get("web/s1", now=3) is None


def test_connections_idle_too_long_are_closed_not_reused() -> None:
    pool = UpstreamPool(idle_timeout=30)
    old = Conn()
    pool.put("web/s1", old, now=0)
    assert pool.get("web/s1", now=31) is None
    assert old.closed


def test_max_age_keeps_unsafe_requests_off_stale_connections() -> None:
    pool = UpstreamPool()
    conn = Conn()
    pool.put("web/s1", conn, now=0)
    assert pool.get("web/s1", now=5, max_age=2) is None
    assert conn.closed


def test_pool_is_bounded_per_server() -> None:
    pool = UpstreamPool(max_idle_per_server=2)
    assert pool.put("web/s1", Conn(), now=0)
    assert pool.put("web/s1", Conn(), now=0)
    assert not pool.put("web/s1", Conn(), now=0)
    assert pool.put("web/s2", Conn(), now=0)
    assert pool.idle_count() == 3


def test_discard_and_close_all() -> None:
    pool = UpstreamPool()
    a, b = Conn(), Conn()
    pool.put("web/s1", a, now=0)
    pool.put("web/s2", b, now=0)
    pool.discard("web/s1", a)
    assert pool.get("web/s1", now=0) is None
    pool.close_all()
    assert b.closed and pool.idle_count() == 0


def test_sweep_closes_only_stale_connections() -> None:
    pool = UpstreamPool(idle_timeout=10)
    old, fresh = Conn(), Conn()
    pool.put("web/s1", old, now=0)
    pool.put("web/s1", fresh, now=8)
    assert pool.sweep(now=12) == 1
    assert old.closed and not fresh.closed
    assert pool.get("web/s1", now=12) is fresh
