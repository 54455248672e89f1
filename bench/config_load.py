"""Benchmark: time and memory to load and validate big configurations.

Generates configurations of 1,000 and 10,000 servers (IP addresses), written in
two layouts: every server in one backend, and backends of 100 servers each
with one frontend per backend. Each file is loaded in a fresh Python process
(`load_config`: read, parse, merge `defaults:`, validate, cross-check), so the
peak RSS is that of one load. The load is shown as wall time and as CPU time
(the better figure on a busy machine); the last column is the wall time of the
whole `bascule validate -c FILE` command (start-up and imports included).

    .venv/bin/python bench/config_load.py [--servers 1000,10000] [--repeat 3]

To compare with another version, point PYTHONPATH at its `src` (for example a
`git archive REV src | tar -x -C /tmp/old`): the loads then use that code.

It is a script, not a test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Runs in the child: one load, then its time and peak RSS as JSON on stdout.
_CHILD = """
import json, resource, sys, time
from bascule.config import load_config
start, cpu_start = time.perf_counter(), time.process_time()
config = load_config(sys.argv[1])
elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
servers = sum(len(backend.servers) for backend in config.backends)
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": elapsed, "cpu": cpu, "servers": servers, "peak_kib": peak_kib}))
"""

SERVERS_PER_BACKEND = 100


def server_line(number: int) -> str:
    # 10.<high>.<mid>.<low>: a distinct IP address per server.
    address = f"10.{(number >> 16) & 255}.{(number >> 8) & 255}.{number & 255}"
    return f"      - {{name: s{number}, address: {address}, port: 8080}}\n"


def config_text(servers: int, per_backend: int) -> str:
    """A valid configuration of `servers` servers in backends of `per_backend`."""
    backends = -(-servers // per_backend)
    parts = [
        "defaults:\n  check: {type: tcp, interval: 5s}\n",
        "frontends:\n",
    ]
    for index in range(backends):
        parts.append(
            f"  - name: fe{index}\n    bind: 127.0.0.1:{20_000 + index}\n"
            f"    default_backend: be{index}\n"
        )
    parts.append("backends:\n")
    number = 0
    for index in range(backends):
        parts.append(f"  - name: be{index}\n    servers:\n")
        for _ in range(min(per_backend, servers - number)):
            parts.append(server_line(number))
            number += 1
    return "".join(parts)


def measure_load(path: Path) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    figures: dict[str, float] = json.loads(result.stdout)
    return figures


def measure_validate(path: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "bascule", "validate", "-c", str(path)],
        capture_output=True,
        timeout=600,
        check=True,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="1000,10000", help="comma-separated server counts")
    parser.add_argument("--repeat", type=int, default=3, help="loads per cell; the best is shown")
    args = parser.parse_args()
    counts = [int(count) for count in args.servers.split(",")]
    layouts = {"one backend": None, f"backends of {SERVERS_PER_BACKEND}": SERVERS_PER_BACKEND}
    print(
        f"{'servers':>8}  {'layout':<16} {'file':>8}  {'load+validate':>13}  {'CPU':>7}  "
        f"{'peak RSS':>9}  {'bascule validate':>16}"
    )
    with tempfile.TemporaryDirectory(prefix="bascule-config-bench-") as directory:
        for count in counts:
            for layout, per_backend in layouts.items():
                path = Path(directory) / f"servers-{count}-{per_backend or 'one'}.yaml"
                path.write_text(config_text(count, per_backend or count), encoding="utf-8")
                loads = [measure_load(path) for _ in range(max(1, args.repeat))]
                assert all(load["servers"] == count for load in loads)
                best = min(load["seconds"] for load in loads)
                cpu = min(load["cpu"] for load in loads)
                peak_mib = max(load["peak_kib"] for load in loads) / 1024
                command = min(measure_validate(path) for _ in range(max(1, args.repeat)))
                size_kib = path.stat().st_size / 1024
                print(
                    f"{count:>8}  {layout:<16} {size_kib:>6.0f}Ki  {best:>12.3f}s  {cpu:>6.3f}s  "
                    f"{peak_mib:>7.1f}Mi  {command:>15.3f}s",
                    flush=True,
                )


if __name__ == "__main__":
    main()
