"""HTTP surface: webhooks, REST API, auth, metrics and the web UI."""
