"""Health of servers: active checks, outlier ejection, slow start, combined server state."""
