"""Benchmarks of paramedic: webhook-to-action latency, ingest throughput and runbook match time.

Run them with ``python -m bench.run`` (``--quick`` for a short smoke run); results go to
``docs/benchmarks.md``. All traffic stays on 127.0.0.1 and every load is bounded in count and time.
"""
