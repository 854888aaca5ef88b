"""Async orchestration: ingest pipeline, workers with leases, step execution, verification,
escalation and MTTR bookkeeping."""
