"""Load runbooks from files and folders, check them against the executor registry, and keep
the current set with its match index.

A folder holds YAML runbooks (``*.yaml``, ``*.yml``) and Python runbooks (``*.py``, loaded by
``runbooks.pyloader``); files starting with ``_`` or ``.`` and runbook test cases (``*.case.yaml``,
see ``testing.cases``) are skipped, so cases and recorded payloads can live next to the runbooks.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from paramedic.actions.registry import ExecutorRegistry
from paramedic.core.loader import Located, Problem, lint_runbook, parse_runbooks, raw_actions
from paramedic.core.matcher import MatchIndex, pinned, runbook_matches, value_matches
from paramedic.core.runbooks import COLLECTOR_KINDS, MatchValue, Runbook, Step, Undo

SUFFIXES = (".yaml", ".yml")
CASE_SUFFIXES = (".case.yaml", ".case.yml")


def _is_runbook_file(f: Path) -> bool:
    return (
        f.suffix in (*SUFFIXES, ".py")
        and f.is_file()
        and not f.name.startswith(("_", "."))
        and not f.name.endswith(CASE_SUFFIXES)
    )


def runbook_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[Problem]]:
    files: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if _is_runbook_file(f) and "__pycache__" not in f.parts))
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
    steps: list[tuple[tuple[str | int, ...], Step]] = [(("steps", i), st) for i, st in enumerate(loc.runbook.steps)]
    if loc.runbook.recover is not None:  # the way back's actions are checked like the steps
        steps += [(("recover", "steps", i), st) for i, st in enumerate(loc.runbook.recover.steps)]
    for at, step in steps:
        if isinstance(step.undo, Undo) and step.undo.action not in registry.names():
            line, col = loc.where((*at, "undo", "action"))
            out.append(
                Problem(
                    loc.file, line, col, f"unknown undo action {step.undo.action!r}", registry.suggest(step.undo.action)
                )
            )
        line, col = loc.where((*at, "action"))
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
                wline, wcol = loc.where((*at, "with", name))
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


def _values(expected: MatchValue) -> list[str]:
    return expected if isinstance(expected, list) else [expected]


def _may_overlap(a: MatchValue | None, b: MatchValue | None) -> bool:
    """Whether some value can satisfy both match values (``None``: no constraint)."""
    if a is None or b is None:
        return True
    va, vb = _values(a), _values(b)
    plain_a = [v for v in va if not v.startswith(("~", "!"))]
    plain_b = [v for v in vb if not v.startswith(("~", "!"))]
    if len(plain_a) == len(va) and len(plain_b) == len(vb):
        return bool(set(plain_a) & set(plain_b))
    if len(plain_a) == len(va):
        return any(value_matches(b, v) for v in plain_a)
    if len(plain_b) == len(vb):
        return any(value_matches(a, v) for v in plain_b)
    return True  # two patterns: assume they can (a lint may be wrong, a miss is worse)


def _accepts(rb: Runbook, label: str, value: str) -> bool:
    """Whether ``rb``'s conditions on ``label`` alone let ``value`` through."""
    m = rb.match
    classic = m.alertname if label == "alertname" else m.labels.get(label)
    if classic is not None and not value_matches(classic, value):
        return False
    return all(lm.matches(value) for lm in m.label_matchers if lm.name == label)


def may_match_same_alert(a: Runbook, b: Runbook) -> bool:
    ma, mb = a.match, b.match
    if not (_may_overlap(ma.alertname, mb.alertname) and _may_overlap(ma.source, mb.source)):
        return False
    for x, y in ((a, b), (b, a)):
        if not all(_accepts(y, k, v) for k, v in pinned(x.match.label_matchers).items()):
            return False
    return all(_may_overlap(ma.labels.get(k), mb.labels.get(k)) for k in set(ma.labels) & set(mb.labels))


def overlap_warnings(books: Sequence[Located]) -> list[Problem]:
    """Two runbooks that can match the same alert and act on the same target: both would run."""
    out = []
    for i, a in enumerate(books):
        for b in books[i + 1 :]:
            ra, rb = a.runbook, b.runbook
            if not (ra.steps and rb.steps) or ra.target != rb.target or not may_match_same_alert(ra, rb):
                continue
            line, col = b.where(("match",))
            out.append(
                Problem(
                    b.file,
                    line,
                    col,
                    f"runbooks {ra.name!r} and {rb.name!r} can match the same alert and act on the same target",
                    f"narrow one match (first at {a.file}:{a.line}), or merge them",
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


def check_enrich(loc: Located) -> list[Problem]:
    """Each ``enrich`` entry names a collector that exists (a typo would silently gather nothing)."""
    out = []
    for i, spec in enumerate(loc.runbook.enrich):
        kinds = list(spec) if isinstance(spec, dict) else []
        for kind in kinds:
            if kind not in COLLECTOR_KINDS:
                line, col = loc.where(("enrich", i, kind))
                close = difflib.get_close_matches(kind, sorted(COLLECTOR_KINDS), n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(COLLECTOR_KINDS))}"
                out.append(Problem(loc.file, line, col, f"unknown evidence collector {kind!r}", hint))
    return out


def load(paths: Iterable[str | Path], registry: ExecutorRegistry, *, lint: bool = True) -> LoadResult:
    files, problems = runbook_files(paths)
    located: list[Located] = []
    for f in files:
        if f.suffix == ".py":
            from paramedic.runbooks import pyloader

            found, probs = pyloader.load_file(f)
        else:
            try:
                text = f.read_text()
            except OSError as exc:
                problems.append(Problem(str(f), 1, 1, f"cannot read: {exc.strerror}"))
                continue
            found, probs = parse_runbooks(text, str(f))
            # a runbook with schema errors is dropped, but its action names are still checked, so
            # every error of a file shows at once rather than one layer per fix
            if any(p.severity == "error" for p in probs):
                valid_lines = {loc.line for loc in found}
                for raw in raw_actions(text):
                    if raw.runbook_line not in valid_lines and raw.action not in registry.names():
                        hint = registry.suggest(raw.action)
                        probs.append(Problem(str(f), raw.line, raw.col, f"unknown action {raw.action!r}", hint))
        problems.extend(probs)
        for loc in found:
            problems.extend(check_actions(loc, registry))
            problems.extend(check_enrich(loc))
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


def runbook_version(rb: Runbook, source: str = "") -> str:
    """A short digest of what the runbook says (and, for a Python runbook, of its file's code), so
    the audit trail can name the version of a runbook that decided."""
    digest = hashlib.sha256(rb.model_dump_json(by_alias=True).encode())
    if source.endswith(".py"):
        try:
            digest.update(Path(source).read_bytes())
        except OSError:
            digest.update(b"unreadable")
    return digest.hexdigest()[:12]


class RunbookSet:
    """The runbooks in force and their match index; replaced whole on reload. ``sources`` says
    where each was defined (``file:line``), ``versions`` what version of it is in force."""

    def __init__(self, books: Sequence[Runbook], *, located: Sequence[Located] = ()) -> None:
        self.by_name = {rb.name: rb for rb in books}
        self.index = MatchIndex.build(books)
        where = {loc.runbook.name: loc for loc in located}
        self.sources = {name: f"{where[name].file}:{where[name].line}" for name in self.by_name if name in where}
        self.versions = {rb.name: runbook_version(rb, where[rb.name].file if rb.name in where else "") for rb in books}

    @classmethod
    def of(cls, result: LoadResult) -> RunbookSet:
        return cls(result.runbooks, located=result.located)

    def version(self, name: str) -> str:
        return self.versions.get(name, "")

    def match(self, alert: object) -> list[Runbook]:
        from paramedic.core.alerts import Alert

        assert isinstance(alert, Alert)
        return self.index.match(alert)

    def get(self, name: str) -> Runbook | None:
        return self.by_name.get(name)


__all__ = ["LoadResult", "RunbookSet", "load", "runbook_matches"]
