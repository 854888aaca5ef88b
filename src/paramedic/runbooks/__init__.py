"""What a runbook author touches: loading YAML and Python runbook files, the ``@runbook`` DSL and
the recording ``Context`` it plans with. Depends on ``core`` and the action registry only; the live
change feed a Python runbook reads is supplied by the engine."""
