"""The balancing algorithms' names, as users write them in the configuration.

The one list of them: the configuration validates `algorithm` against it and the
registry (`balance/registry.py`) maps each name to its code, refusing at import to
map any other. It imports nothing, so the configuration (layer 0 in docs/design.md)
reads it without importing a single algorithm.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

ALGORITHM_NAMES: Final[tuple[str, ...]] = (
    "round_robin",
    "least_connections",
    "source",
    "ip_hash",
    "hash",
    "random",
    "first",
)
"""In the order the docs list them. `ip_hash` is nginx's name for `source`."""

# What HAProxy and nginx users will type, and what we call it: a hint beats a bare "invalid".
ALGORITHM_SYNONYMS: Final[Mapping[str, str]] = {
    "roundrobin": "round_robin",
    "static-rr": "round_robin",
    "leastconn": "least_connections",
    "least_conn": "least_connections",
    "uri": "hash",
    "url_param": "hash",
    "hdr": "hash",
    "rdp-cookie": "hash",
}
