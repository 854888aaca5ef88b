"""Notification sinks behind a durable outbox."""
