"""Evidence collectors: metrics and charts, logs, recent changes, target state."""
