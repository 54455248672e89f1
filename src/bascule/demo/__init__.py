"""`bascule demo`: three real backends, real traffic, a real failure."""
