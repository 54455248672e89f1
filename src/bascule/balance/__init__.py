"""Balancing algorithms (pure code): one module per algorithm, a registry by name."""
