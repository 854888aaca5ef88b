"""Load Python runbook files: import each ``.py`` file as its own module, collect the functions
``@runbook`` declared, validate each declaration like YAML, and read the function bodies so that
``paramedic validate`` checks a Python runbook's actions, arguments, labels and verify without
running it.

What the code shows is turned into the runbook's declared ``steps``: ``ctx.act("x", a=...)`` with
a literal action name becomes a step, an argument read straight from a label
(``ctx.labels["program"]``, or an f-string of labels) becomes the template it is equivalent to, and
anything computed is shown as ``<expression>``. Those steps feed the same checks as YAML (unknown
action, unknown or missing argument, lints, overlap, blast-radius targets); the plan itself always
comes from calling the function (``runbooks.dsl.record``).

Importing a runbook file runs its top-level code: runbook folders are trusted configuration. An
import error is reported with the file and the line that raised it.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import re
import sys
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from paramedic.core.durations import format_duration, parse_duration
from paramedic.core.loader import Located, Problem, template_problems, validation_problems
from paramedic.runbooks.dsl import DECLARATION, MAX_BUDGET, Declaration, PythonRunbook

Pos = tuple[int, int]
PathKey = tuple[str | int, ...]
_LABEL_METHODS = {"get", "keys", "items", "values", "read"}


def _pos(node: ast.AST) -> Pos:
    return (getattr(node, "lineno", 1), getattr(node, "col_offset", 0) + 1)


# ---- import ------------------------------------------------------------------------------------
def _module_name(path: Path) -> str:
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:10]
    stem = re.sub(r"\W", "_", path.stem)
    return f"paramedic_runbooks.{stem}_{digest}"


def _import_problem(exc: BaseException, filename: str) -> Problem:
    if isinstance(exc, SyntaxError) and exc.filename == filename:
        return Problem(filename, exc.lineno or 1, exc.offset or 1, f"not valid Python: {exc.msg}")
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
    line = frames[-1].lineno or 1 if frames else 1
    col = (frames[-1].colno or 0) + 1 if frames else 1
    hint = ""
    if isinstance(exc, ModuleNotFoundError):
        hint = f"install {exc.name!r} into paramedic's environment, or keep the helper in this file"
    elif isinstance(exc, ImportError) and exc.name == "paramedic":
        hint = "the Python runbook API is: from paramedic import Context, runbook"
    elif isinstance(exc, TypeError) and "runbook()" in str(exc):
        hint = "declare it with keywords: @runbook(match={...}, owner='team-x', ...)"
    return Problem(filename, line, col, f"cannot import: {type(exc).__name__}: {exc}", hint)


def _import(path: Path, tree: ast.Module) -> tuple[types.ModuleType | None, Problem | None]:
    filename = str(path)
    name = _module_name(path)
    module = types.ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module  # dataclasses and pickling look a module up by name
    try:
        code = compile(tree, filename, "exec")
        exec(code, module.__dict__)  # noqa: S102 - a runbook file is trusted configuration, like a plugin
    except (Exception, SystemExit) as exc:
        sys.modules.pop(name, None)
        return None, _import_problem(exc, filename)
    return module, None


# ---- static reading of the function --------------------------------------------------------------
@dataclass
class _Reading:
    """What the function body shows."""

    ctx: str
    steps: list[dict[str, Any]] = field(default_factory=list)
    positions: dict[PathKey, Pos] = field(default_factory=dict)
    reads: set[str] = field(default_factory=set)
    verifies: bool = False
    problems: list[tuple[Pos, str, str]] = field(default_factory=list)  # warnings: where, message, hint


def _attr_of_ctx(node: ast.AST, ctx: str, *attrs: str) -> bool:
    """``node`` is ``ctx.<attrs[0]>.<attrs[1]>…``."""
    for attr in reversed(attrs):
        if not (isinstance(node, ast.Attribute) and node.attr == attr):
            return False
        node = node.value
    return isinstance(node, ast.Name) and node.id == ctx


def _label_read(node: ast.AST, ctx: str) -> str | None:
    """The label name if ``node`` reads one: ``ctx.labels["x"]``, ``ctx.labels.x``, ``ctx.labels.get("x")``."""
    if isinstance(node, ast.Subscript) and _attr_of_ctx(node.value, ctx, "labels"):
        key = node.slice
        return key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else None
    if isinstance(node, ast.Call) and _attr_of_ctx(node.func, ctx, "labels", "get") and node.args:
        key = node.args[0]
        return key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else None
    if isinstance(node, ast.Attribute) and node.attr not in _LABEL_METHODS and _attr_of_ctx(node.value, ctx, "labels"):
        return node.attr
    return None


def _declared(node: ast.expr, ctx: str) -> Any:
    """The YAML value equivalent to an argument expression, or ``<expression>`` if computed."""
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, str | int | float | bool)):
        return node.value
    if (label := _label_read(node, ctx)) is not None:
        return f"{{{{ labels.{label} }}}}" if label.isidentifier() else f"{{{{ labels[{label!r}] }}}}"
    if isinstance(node, ast.JoinedStr):
        parts = []
        for part in node.values:
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                parts.append(part.value)
            elif isinstance(part, ast.FormattedValue) and part.conversion == -1 and part.format_spec is None:
                inner = _declared(part.value, ctx)
                if not isinstance(inner, str) or not inner.startswith("{{"):
                    return f"<{ast.unparse(node)}>"
                parts.append(inner)
            else:
                return f"<{ast.unparse(node)}>"
        return "".join(parts)
    if isinstance(node, ast.List | ast.Tuple):
        return [_declared(e, ctx) for e in node.elts]
    if isinstance(node, ast.Dict) and all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in node.keys):
        return {
            k.value: _declared(v, ctx)
            for k, v in zip(node.keys, node.values, strict=True)
            if isinstance(k, ast.Constant)
        }
    return f"<{ast.unparse(node)}>"


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def _read_act(call: ast.Call, reading: _Reading, *, options: bool) -> None:
    """One ``ctx.act(...)`` (``options=False``) or ``ctx.step(...)`` call."""
    ctx = reading.ctx
    if not call.args or not (isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)):
        reading.problems.append(
            (_pos(call), "the action name is computed, so validate cannot check it", "pass the name as a literal")
        )
        return
    args: dict[str, Any] = {}
    arg_pos: dict[str, Pos] = {}
    extra: dict[str, Any] = {}
    if options:  # ctx.step(action, {...}, name=..., idempotent=..., timeout=...)
        given = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "args"), None)
        if given is not None and not isinstance(given, ast.Dict):
            reading.problems.append((_pos(call), "the arguments are computed, so validate cannot check them", ""))
            return
        if isinstance(given, ast.Dict):
            for k, v in zip(given.keys, given.values, strict=True):
                if isinstance(k, ast.Constant) and isinstance(k.value, str):
                    args[k.value] = _declared(v, ctx)
                    arg_pos[k.value] = _pos(k)
        for kw in call.keywords:
            if kw.arg in ("name", "idempotent", "timeout") and (value := _literal(kw.value)) is not None:
                extra[kw.arg] = value
    else:
        for kw in call.keywords:
            if kw.arg is None:
                reading.problems.append(
                    (_pos(kw.value), "arguments passed with ** cannot be checked by validate", "name each argument")
                )
                return
            args[kw.arg] = _declared(kw.value, ctx)
            arg_pos[kw.arg] = _pos(kw)
    i = len(reading.steps)
    reading.steps.append({"action": call.args[0].value, "with": args, **extra})
    reading.positions[("steps", i)] = _pos(call)
    reading.positions[("steps", i, "action")] = _pos(call.args[0])
    for name, pos in arg_pos.items():
        reading.positions[("steps", i, "with", name)] = pos


def _read_body(fn: ast.AsyncFunctionDef | ast.FunctionDef) -> _Reading:
    params = [*fn.args.posonlyargs, *fn.args.args]
    reading = _Reading(ctx=params[0].arg if params else "ctx")
    calls = sorted((n for n in ast.walk(fn) if isinstance(n, ast.Call)), key=lambda n: (n.lineno, n.col_offset))
    for call in calls:
        if _attr_of_ctx(call.func, reading.ctx, "act"):
            _read_act(call, reading, options=False)
        elif _attr_of_ctx(call.func, reading.ctx, "step"):
            _read_act(call, reading, options=True)
        elif isinstance(call.func, ast.Attribute) and _attr_of_ctx(call.func.value, reading.ctx, "verify"):
            reading.verifies = True
    for node in ast.walk(fn):
        if (label := _label_read(node, reading.ctx)) is not None:
            reading.reads.add(label)
    return reading


# ---- positions of the decorator's keywords -------------------------------------------------------
def _scalar(node: ast.expr) -> bool:
    return not isinstance(node, ast.Dict | ast.List | ast.Tuple)


def _positions(node: ast.expr, path: PathKey, out: dict[PathKey, Pos]) -> None:
    """Like the YAML loader: a scalar points at its value, a container at its key."""
    out.setdefault(path, _pos(node))
    if isinstance(node, ast.Dict):
        for k, v in zip(node.keys, node.values, strict=True):
            if isinstance(k, ast.Constant) and isinstance(k.value, str):
                child = (*path, k.value)
                if not _scalar(v):
                    out[child] = _pos(k)
                _positions(v, child, out)
    elif isinstance(node, ast.List | ast.Tuple):
        for i, v in enumerate(node.elts):
            _positions(v, (*path, i), out)


def _decorator(fn: ast.AsyncFunctionDef | ast.FunctionDef) -> ast.Call | None:
    for d in fn.decorator_list:
        if isinstance(d, ast.Call):
            f = d.func
            if (isinstance(f, ast.Name) and f.id == "runbook") or (
                isinstance(f, ast.Attribute) and f.attr == "runbook"
            ):
                return d
    return None


def _definition(tree: ast.Module, fn: Callable[..., Any]) -> ast.AsyncFunctionDef | ast.FunctionDef | None:
    first = fn.__code__.co_firstlineno
    defs = [n for n in tree.body if isinstance(n, ast.AsyncFunctionDef | ast.FunctionDef) and n.name == fn.__name__]
    for node in defs:
        if first in (node.lineno, *(d.lineno for d in node.decorator_list)):
            return node
    return defs[-1] if defs else None


# ---- one declared runbook ------------------------------------------------------------------------
def _signature_problem(fn: Callable[..., Any]) -> str | None:
    if not inspect.iscoroutinefunction(fn):
        return f"runbook {fn.__name__!r} must be declared with async def"
    params = list(inspect.signature(fn).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in params if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if not positional or len(required) > 1:
        return f"runbook {fn.__name__!r} must take exactly one argument, the context"
    return None


def _description(fn: Callable[..., Any]) -> str:
    doc = inspect.getdoc(fn) or ""
    return doc.split("\n\n", 1)[0].replace("\n", " ").strip()


def _one(
    fn: Callable[..., Any], decl: Declaration, tree: ast.Module, filename: str
) -> tuple[Located | None, list[Problem]]:
    node = _definition(tree, fn)
    call = _decorator(node) if node is not None else None
    line, col = _pos(call) if call is not None else (_pos(node) if node is not None else (1, 1))
    positions: dict[PathKey, Pos] = {}
    if call is not None:
        for kw in call.keywords:
            if kw.arg is not None:
                positions[(kw.arg,)] = _pos(kw)
                _positions(kw.value, (kw.arg,), positions)

    def where(path: PathKey) -> Pos:
        while path and path not in positions:
            path = path[:-1]
        return positions.get(path, (line, col))

    problems: list[Problem] = []
    if (msg := _signature_problem(fn)) is not None:
        at = _pos(node) if node is not None else (line, col)
        return None, [Problem(filename, *at, msg, "async def name(ctx: Context) -> None")]
    reading = _read_body(node) if node is not None else _Reading(ctx="ctx")
    positions.update(reading.positions)
    data = {"name": fn.__name__.replace("_", "-"), "description": _description(fn), **decl.options}
    data["steps"] = reading.steps
    try:
        rb = PythonRunbook.model_validate(data)
    except ValidationError as exc:
        return None, validation_problems(exc, filename, where)
    try:
        budget = parse_duration(decl.budget)
    except ValueError as exc:
        return None, [Problem(filename, *where(("budget",)), f"budget: {exc}", "a few seconds: budget='2s'")]
    if budget <= timedelta(0) or budget > MAX_BUDGET:
        problems.append(
            Problem(
                filename,
                *where(("budget",)),
                f"budget must be above 0 and at most {format_duration(MAX_BUDGET)}",
                "planning runs before the alert is stored, so it must be quick",
            )
        )
        return None, problems
    rb.bind(fn, budget=budget, file=filename)
    loc = Located(rb, filename, line, col, positions, reads=frozenset(reading.reads), verifies_in_code=reading.verifies)
    problems.extend(template_problems(loc))
    problems.extend(Problem(filename, *at, msg, hint, severity="warning") for at, msg, hint in reading.problems)
    return loc, problems


def load_file(path: Path) -> tuple[list[Located], list[Problem]]:
    """Import ``path`` and return the runbooks it declares, with every problem found."""
    filename = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        return [], [Problem(filename, 1, 1, f"cannot read: {exc.strerror}")]
    try:
        tree = ast.parse(text, filename)
    except SyntaxError as exc:
        return [], [Problem(filename, exc.lineno or 1, exc.offset or 1, f"not valid Python: {exc.msg}")]
    module, problem = _import(path, tree)
    if module is None:
        return [], [problem] if problem else []
    declared = [
        (obj, decl)
        for obj in vars(module).values()
        if callable(obj)
        and getattr(obj, "__module__", None) == module.__name__
        and isinstance(decl := getattr(obj, DECLARATION, None), Declaration)
    ]
    declared.sort(key=lambda pair: pair[0].__code__.co_firstlineno)
    if not declared:
        return [], [
            Problem(
                filename,
                1,
                1,
                "this file declares no runbook",
                "decorate an async function with @runbook(...); name helper modules _helpers.py",
                severity="warning",
            )
        ]
    located: list[Located] = []
    problems: list[Problem] = []
    for fn, decl in declared:
        loc, probs = _one(fn, decl, tree, filename)
        problems.extend(probs)
        if loc is not None:
            located.append(loc)
    return located, problems
