"""The control plane: owns server state, publishes snapshots, keeps the event journal."""
