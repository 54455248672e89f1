"""The data plane: L4 (TCP) and L7 (HTTP/1.1) proxying to backend servers."""
