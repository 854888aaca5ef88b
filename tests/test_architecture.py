"""The layer rule of DESIGN §2, checked by import-linter inside the test suite."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "paramedic"


def test_import_linter_contracts_hold() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint)], capture_output=True, text=True, cwd=SRC.parents[1], check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Layers point downwards KEPT" in result.stdout


def test_core_imports_nothing_else_of_paramedic_and_no_io() -> None:
    forbidden_modules = {"sqlalchemy", "httpx", "asyncio", "subprocess", "socket", "os", "fastapi"}
    for path in (SRC / "core").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith("paramedic.") or name.startswith("paramedic.core"), (path, name)
                assert name.split(".")[0] not in forbidden_modules, (path, name)
