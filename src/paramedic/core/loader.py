"""Parse runbook YAML with positions, so every problem is reported as file:line:col with a hint.

Pure: it takes text, not a path. ``runbooks.loading`` reads files and adds the checks that need the
executor registry (unknown action names).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from paramedic.core.matchers import LabelMatcher, MatcherSyntaxError, MatchOp
from paramedic.core.runbooks import MatchValue, Runbook, RunbookFile
from paramedic.core.templating import referenced_labels, template_syntax_error

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    col: int
    message: str
    hint: str = ""
    severity: str = "error"  # error | warning

    def __str__(self) -> str:
        hint = f" (hint: {self.hint})" if self.hint else ""
        return f"{self.file}:{self.line}:{self.col}: {self.severity}: {self.message}{hint}"


@dataclass(frozen=True, slots=True)
class Located:
    """A runbook with where it was defined.

    A Python runbook's code is opaque to templates, so its loader states what the code does:
    ``reads`` are the labels the function reads, ``verifies_in_code`` whether it records a verify.
    """

    runbook: Runbook
    file: str
    line: int
    col: int
    positions: dict[Path, tuple[int, int]]
    reads: frozenset[str] = frozenset()
    verifies_in_code: bool = False

    def where(self, path: Path) -> tuple[int, int]:
        while path and path not in self.positions:
            path = path[:-1]
        return self.positions.get(path, (self.line, self.col))


def _to_python(node: yaml.Node, path: Path, positions: dict[Path, tuple[int, int]]) -> Any:
    """Convert a composed YAML node, recording where each path starts: the value for a scalar
    (so a bad value is pointed at), the key for a mapping or list (so an unknown key is)."""
    positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else yaml.safe_load(yaml.serialize(key_node))
            child = (*path, str(key))
            if not isinstance(value_node, yaml.ScalarNode):
                positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _to_python(value_node, child, positions)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(v, (*path, i), positions) for i, v in enumerate(node.value)]
    return yaml.safe_load(yaml.serialize(node))


def _fields(model: type[BaseModel]) -> list[str]:
    names = []
    for name, info in model.model_fields.items():
        names.append(info.alias or name)
    return names


def _hint_for(err: dict[str, Any], data: Any) -> str:
    kind = err.get("type", "")
    loc = err.get("loc", ())
    if kind == "extra_forbidden" and loc:
        bad = str(loc[-1])
        model = _model_at(loc[:-1])
        if model is not None:
            close = difflib.get_close_matches(bad, _fields(model), n=1)
            if close:
                return f"did you mean {close[0]!r}?"
            return "known keys: " + ", ".join(_fields(model))
    if kind == "missing" and loc and loc[-1] == "owner":
        return "every runbook needs an owner, the team that answers for it: owner: team-payments"
    msg = str(err.get("msg", ""))
    if "duration" in msg:
        return "durations look like 30s, 15m, 1h"
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "name":
        return "lower-case letters, digits, '-', '_' and '.', starting with a letter or digit"
    if kind == "literal_error" or kind == "enum":
        return str(err.get("ctx", {}).get("expected", ""))
    return ""


def _model_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The pydantic model that sits at ``loc`` inside a RunbookFile (best effort, for hints)."""
    from typing import get_args

    model: type[BaseModel] | None = RunbookFile
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part or n == part), None)
        if field is None:
            return None
        ann = field.annotation
        candidates = [ann, *get_args(ann)]
        inner = [a for c in candidates for a in (c, *get_args(c))]
        model = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return model


def yaml_with_positions(text: str) -> tuple[Any, dict[Path, tuple[int, int]]]:
    """The data of a YAML document and where each path in it starts (line, column; 1-based).
    Raises ``yaml.YAMLError``."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    positions: dict[Path, tuple[int, int]] = {}
    return (None if root is None else _to_python(root, (), positions)), positions


@dataclass(frozen=True, slots=True)
class RawAction:
    """A step's ``action`` as written, for runbooks that failed validation (still worth checking)."""

    runbook_line: int
    action: str
    line: int
    col: int


def raw_actions(text: str) -> list[RawAction]:
    """Every ``runbooks[*].steps[*].action`` string of a file, valid runbook or not."""
    try:
        data, positions = yaml_with_positions(text)
    except yaml.YAMLError:
        return []
    books = data.get("runbooks") if isinstance(data, dict) else None
    out: list[RawAction] = []
    for i, book in enumerate(books if isinstance(books, list) else []):
        steps = book.get("steps") if isinstance(book, dict) else None
        for j, step in enumerate(steps if isinstance(steps, list) else []):
            if isinstance(step, dict) and isinstance(step.get("action"), str):
                line, col = positions.get(("runbooks", i, "steps", j, "action"), (1, 1))
                out.append(RawAction(positions.get(("runbooks", i), (1, 1))[0], step["action"], line, col))
    return out


def parse_runbooks(text: str, filename: str) -> tuple[list[Located], list[Problem]]:
    """Parse one runbook file. Returns the valid runbooks and every problem found."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = getattr(exc, "problem", None) or str(exc)
        return [], [Problem(filename, line, col, f"not valid YAML: {problem}", "check indentation and quoting")]
    if root is None:
        return [], [Problem(filename, 1, 1, "the file is empty", "start with apiVersion: paramedic/v1")]
    positions: dict[Path, tuple[int, int]] = {}
    data = _to_python(root, (), positions)
    problems: list[Problem] = []

    def at(path: Path) -> tuple[int, int]:
        while path and path not in positions:
            path = path[:-1]
        return positions.get(path, (1, 1))

    def under(base: Path) -> Callable[[Path], tuple[int, int]]:
        return lambda path: at((*base, *path))

    if not isinstance(data, dict):
        return [], [Problem(filename, 1, 1, "a runbook file is a mapping", "start with apiVersion: paramedic/v1")]
    located: list[Located] = []
    top = {k: v for k, v in data.items() if k != "runbooks"}
    top["runbooks"] = []
    try:
        RunbookFile.model_validate(top)
    except ValidationError as exc:
        for err in exc.errors():
            line, col = at(tuple(str(p) for p in err["loc"]))
            problems.append(Problem(filename, line, col, _message(err), _hint_for(dict(err), data)))
    books = data.get("runbooks")
    if not isinstance(books, list):
        line, col = at(("runbooks",))
        problems.append(Problem(filename, line, col, "runbooks must be a list", "runbooks:\n  - name: ..."))
        return [], problems
    seen: dict[str, int] = {}
    for i, raw in enumerate(books):
        base: Path = ("runbooks", i)
        try:
            rb = Runbook.model_validate(raw)
        except ValidationError as exc:
            problems.extend(validation_problems(exc, filename, under(base)))
            continue
        line, col = at(base)
        if rb.name in seen:
            problems.append(
                Problem(
                    filename,
                    line,
                    col,
                    f"runbook name {rb.name!r} is used twice",
                    f"first at line {seen[rb.name]}",
                )
            )
            continue
        seen[rb.name] = line
        sub = {p[2:]: v for p, v in positions.items() if p[:2] == base}
        loc_rb = Located(rb, filename, line, col, sub)
        problems.extend(template_problems(loc_rb))
        located.append(loc_rb)
    return located, problems


def validation_problems(exc: ValidationError, filename: str, where: Callable[[Path], tuple[int, int]]) -> list[Problem]:
    """One problem per pydantic error of one runbook; ``where`` maps a path inside the runbook
    (``("guardrails", "rate_limit", "per")``) to its line and column."""
    out = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        line, col = where(tuple(p if isinstance(p, int) else str(p) for p in loc))
        full = {**dict(err), "loc": ("runbooks", 0, *loc)}
        out.append(Problem(filename, line, col, _message(err), _hint_for(full, None)))
    return out


def _message(err: Any) -> str:
    loc = ".".join(str(p) for p in err["loc"] if not isinstance(p, int)) or "file"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"unknown key {loc!s}"
    if err["type"] == "missing":
        return f"{loc} is required"
    return f"{loc}: {msg}"


def _templates(value: Any, path: Path) -> list[tuple[Path, str]]:
    if isinstance(value, str):
        return [(path, value)] if ("{{" in value or "{%" in value) else []
    if isinstance(value, list):
        return [t for i, v in enumerate(value) for t in _templates(v, (*path, i))]
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in _templates(v, (*path, str(k)))]
    return []


def template_problems(loc: Located) -> list[Problem]:
    """Templates that do not parse, in the target, the steps, the verify and the enrich list."""
    rb = loc.runbook
    raw = rb.model_dump(mode="json", by_alias=True)
    out: list[Problem] = []
    for path, tmpl in _templates({k: raw[k] for k in ("target", "steps", "verify", "enrich")}, ()):
        line, col = loc.where(path)
        if (msg := template_syntax_error(tmpl)) is not None:
            out.append(Problem(loc.file, line, col, msg, "templates look like {{ labels.instance }}"))
    return out


_AM_OPERATORS = ("!~", "!=", "=~", "=")


def _classic_values(rb: Runbook) -> list[tuple[Path, str]]:
    """Every value written in paramedic's own match syntax, with its path under ``match``."""
    m = rb.match
    found: list[tuple[Path, MatchValue | None]] = [(("alertname",), m.alertname), (("source",), m.source)]
    found += [(("labels", k), v) for k, v in m.labels.items()]
    out: list[tuple[Path, str]] = []
    for path, value in found:
        for i, v in enumerate([value] if isinstance(value, str) else value or []):
            out.append(((*path, i) if isinstance(value, list) else path, v))
    return out


def ambiguous_value_hint(label: str, value: str) -> str | None:
    """A hint when a value in paramedic's own syntax reads like an Alertmanager operator: ``!~foo``
    means "not equal to ``~foo``" here, not "does not match the regex ``foo``"."""
    op = next((o for o in _AM_OPERATORS if value.startswith(o)), None)
    if op is None:
        return None
    rest = value[len(op) :].strip()
    meant = str(LabelMatcher(label, MatchOp(op), rest)) if _compiles(op, rest) else f"{label}{op}..."
    here = f'"not equal to {value[1:]!r}"' if value.startswith("!") else f"equal to {value!r}"
    return f"here it means {here}; for Alertmanager's operator write matchers: ['{meant}']"


def _compiles(op: str, value: str) -> bool:
    try:
        LabelMatcher("x", MatchOp(op), value)
    except MatcherSyntaxError:
        return False
    return True


def lint_runbook(loc: Located) -> list[Problem]:
    """Warnings for what bites in production (DESIGN §3, issue: validate lints).

    A runbook with a ``promote`` rule is linted like an ``auto`` one: it will get there on its
    own. A Python runbook's label reads and in-code verify count like templates and ``verify:``.
    """
    rb = loc.runbook
    out: list[Problem] = []

    def warn(path: Path, message: str, hint: str) -> None:
        line, col = loc.where(path)
        out.append(Problem(loc.file, line, col, message, hint, severity="warning"))

    automatic = rb.mode == "auto" or rb.promote is not None
    how = "runs automatically" if rb.mode == "auto" else "can promote itself to auto"
    where: Path = ("mode",) if rb.mode == "auto" or rb.promote is None else ("promote",)
    if automatic and rb.steps and rb.verify is None and not loc.verifies_in_code:
        warn(
            where,
            f"runbook {rb.name!r} {how} but has no verify",
            "add verify: so a failed remediation is noticed and counts toward the breaker",
        )
    if automatic and rb.steps and rb.guardrails.rate_limit is None:
        warn(
            where,
            f"runbook {rb.name!r} {how} with no rate limit",
            "add guardrails.rate_limit: {max: 3, per: 1h, scope: target}",
        )
    for path, value in _classic_values(rb):
        if (hint := ambiguous_value_hint(str(path[1] if path[0] == "labels" else path[0]), value)) is not None:
            warn(("match", *path), f"match value {value!r} is ambiguous", hint)
    raw = rb.model_dump(mode="json", by_alias=True)
    used: set[str] = set(loc.reads)
    for _, tmpl in _templates({k: raw[k] for k in ("target", "steps", "verify")}, ()):
        used |= referenced_labels(tmpl)
    missing = sorted(used - set(rb.params))
    if missing and rb.steps:
        warn(
            ("params",) if rb.params else ("steps",),
            f"templated label(s) {', '.join(missing)} reach an action without a params pattern",
            f"declare params: {{{missing[0]}: {{pattern: '^[a-z0-9_-]{{1,64}}$'}}}};"
            " until then the strict default applies",
        )
    return out
