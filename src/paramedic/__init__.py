"""paramedic: runbooks-as-code that fire on alerts, inside explicit guardrails.

The public surface is small: the ``runbook`` decorator and ``Context`` for Python runbooks
(DESIGN §3.2). Everything else is reached through the CLI, the HTTP API or the layers below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Context", "__version__", "runbook"]

if TYPE_CHECKING:  # pragma: no cover
    from paramedic.runbooks.dsl import Context, runbook


def __getattr__(name: str) -> Any:
    # Imported lazily so that ``import paramedic.core`` stays light and free of engine imports.
    if name in {"runbook", "Context"}:
        from paramedic.runbooks import dsl as pyrunbooks

        return getattr(pyrunbooks, name)
    raise AttributeError(name)
