"""Offline tools that never act: the dry run (``paramedic test``), runbook test cases and the
payload recorder (``paramedic record``). ``serve`` never imports this package."""
