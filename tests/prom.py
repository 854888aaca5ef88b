"""Old name of ``tests.support.services.Prometheus``: kept only while tests still import it."""

from __future__ import annotations

from tests.support.services import Prometheus

__all__ = ["Prometheus"]
