"""VRRP failover: pure advert codec and election state machine, plus their I/O adapters."""
