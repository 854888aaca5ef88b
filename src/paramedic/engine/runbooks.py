"""Load runbooks from files and folders, check them against the executor registry, and keep
the current set with its match index."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from paramedic.actions.registry import ExecutorRegistry
from paramedic.core.loader import Located, Problem, lint_runbook, parse_runbooks
from paramedic.core.matcher import MatchIndex, runbook_matches
from paramedic.core.runbooks import Runbook

SUFFIXES = (".yaml", ".yml")


def runbook_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[Problem]]:
    files: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files.extend(
                sorted(
                    f
                    for f in p.rglob("*")
                    if f.suffix in (*SUFFIXES, ".py") and f.is_file() and not f.name.startswith(("_", "."))
                )
            )
        elif p.is_file():
            files.append(p)
        else:
            problems.append(
                Problem(
                    str(p),
                    1,
                    1,
                    "no such file or folder",
                    "check the runbooks: paths in the config",
                )
            )
    return files, problems


def check_actions(loc: Located, registry: ExecutorRegistry) -> list[Problem]:
    out = []
    for i, step in enumerate(loc.runbook.steps):
        line, col = loc.where(("steps", i, "action"))
        if step.action not in registry.names():
            out.append(
                Problem(
                    loc.file,
                    line,
                    col,
                    f"unknown action {step.action!r}",
                    registry.suggest(step.action),
                )
            )
            continue
        spec = registry.spec(step.action)
        for name in step.with_:
            if spec.param(name) is None:
                wline, wcol = loc.where(("steps", i, "with", name))
                known = ", ".join(p.name for p in spec.params)
                out.append(
                    Problem(
                        loc.file,
                        wline,
                        wcol,
                        f"{step.action} does not take {name!r}",
                        f"it takes: {known}",
                    )
                )
        for p in spec.params:
            if p.required and p.name not in step.with_:
                out.append(
                    Problem(
                        loc.file,
                        line,
                        col,
                        f"{step.action} needs {p.name!r}",
                        f"add with: {{{p.name}: ...}}",
                    )
                )
    return out


def overlap_warnings(books: Sequence[Located]) -> list[Problem]:
    """Two runbooks with the same plain alertname that act on the same target template."""
    out = []
    for i, a in enumerate(books):
        for b in books[i + 1 :]:
            ra, rb = a.runbook, b.runbook
            if not (ra.steps and rb.steps) or ra.target != rb.target:
                continue
            if (
                ra.match.alertname is not None
                and ra.match.alertname == rb.match.alertname
                and ra.match.labels == rb.match.labels
            ):
                line, col = b.where(("match",))
                out.append(
                    Problem(
                        b.file,
                        line,
                        col,
                        f"runbooks {ra.name!r} and {rb.name!r} match the same alerts and act on the same target",
                        "narrow one match, or merge them",
                        severity="warning",
                    )
                )
    return out


@dataclass(frozen=True, slots=True)
class LoadResult:
    located: list[Located]
    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def runbooks(self) -> list[Runbook]:
        return [loc.runbook for loc in self.located]


def load(paths: Iterable[str | Path], registry: ExecutorRegistry, *, lint: bool = True) -> LoadResult:
    files, problems = runbook_files(paths)
    located: list[Located] = []
    for f in files:
        if f.suffix == ".py":
            from paramedic.engine import pyrunbooks

            found, probs = pyrunbooks.load_file(f)
        else:
            try:
                text = f.read_text()
            except OSError as exc:
                problems.append(Problem(str(f), 1, 1, f"cannot read: {exc.strerror}"))
                continue
            found, probs = parse_runbooks(text, str(f))
        problems.extend(probs)
        for loc in found:
            problems.extend(check_actions(loc, registry))
            if lint:
                problems.extend(lint_runbook(loc))
        located.extend(found)
    names: dict[str, Located] = {}
    for loc in located:
        if loc.runbook.name in names:
            first = names[loc.runbook.name]
            problems.append(
                Problem(
                    loc.file,
                    loc.line,
                    loc.col,
                    f"runbook {loc.runbook.name!r} is defined twice",
                    f"first in {first.file}:{first.line}",
                )
            )
        names[loc.runbook.name] = loc
    if lint:
        problems.extend(overlap_warnings(located))
    return LoadResult(located, problems)


class RunbookSet:
    """The runbooks in force and their match index; replaced whole on reload."""

    def __init__(self, books: Sequence[Runbook]) -> None:
        self.by_name = {rb.name: rb for rb in books}
        self.index = MatchIndex.build(books)

    def match(self, alert: object) -> list[Runbook]:
        from paramedic.core.alerts import Alert

        assert isinstance(alert, Alert)
        return self.index.match(alert)

    def get(self, name: str) -> Runbook | None:
        return self.by_name.get(name)


__all__ = ["LoadResult", "RunbookSet", "load", "runbook_matches"]
