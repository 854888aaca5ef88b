"""Executors: one module per target system, all behind the ``Executor`` protocol."""
