"""Bascule: a load balancer and failover daemon for Linux."""

__version__ = "0.1.0"
