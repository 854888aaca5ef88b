"""The starter library in examples/runbooks: every runbook validates strictly with no lint warning,
and its test cases pass."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from paramedic.actions.registry import build_registry
from paramedic.cli import main
from paramedic.runbooks import loading as loader
from paramedic.testing.cases import find_cases, load_case

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "runbooks"
FILES = sorted(loader.runbook_files([EXAMPLES])[0])


def test_the_library_has_yaml_and_python_runbooks() -> None:
    assert {f.suffix for f in FILES} == {".yaml", ".py"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_each_runbook_file_validates_strictly(path: Path) -> None:
    result = CliRunner().invoke(main, ["validate", "--strict", str(path)])
    assert result.exit_code == 0, result.output
    assert "0 error(s), 0 warning(s)" in result.output


def test_the_whole_library_has_no_overlap_or_lint_warning() -> None:
    result = loader.load([EXAMPLES], build_registry({}))
    assert result.problems == []
    assert len(result.located) >= 8


def test_every_case_passes() -> None:
    result = CliRunner().invoke(main, ["test", str(EXAMPLES)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert " 0 failed" in result.output
    assert "FAIL" not in result.output


def test_every_runbook_has_a_case_that_matches_it() -> None:
    names = {loc.runbook.name for loc in loader.load([EXAMPLES], build_registry({})).located}
    covered: set[str] = set()
    for f in find_cases([EXAMPLES]):
        spec = load_case(f)
        for want in spec.expect if isinstance(spec.expect, list) else [spec.expect]:
            covered |= set(want.matches or ())
    assert names <= covered, f"runbooks without a case: {sorted(names - covered)}"


def test_every_case_says_what_it_checks() -> None:
    for f in find_cases([EXAMPLES]):
        assert yaml.safe_load(f.read_text()).get("description"), f"{f.name} has no description"
