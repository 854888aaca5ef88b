"""Python runbooks (DESIGN §3.2). Placeholder loader until the Python API lands: a ``.py`` file in
a runbooks folder is reported, not silently ignored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from paramedic.core.loader import Located, Problem


class Context:  # pragma: no cover - filled in with the Python runbook API
    """The context a Python runbook receives."""


def runbook(**_kwargs: Any) -> Any:  # pragma: no cover
    raise NotImplementedError("Python runbooks are not supported yet; write the runbook in YAML")


def load_file(path: Path) -> tuple[list[Located], list[Problem]]:
    return [], [
        Problem(
            str(path),
            1,
            1,
            "Python runbooks are not supported yet",
            "write this runbook in YAML",
            severity="warning",
        )
    ]
