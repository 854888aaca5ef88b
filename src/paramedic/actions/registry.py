"""Maps action names to executors, checks arguments, and builds executors from configuration."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from paramedic.actions.base import ActionRequest, ActionSpec, Executor, ParamSpec
from paramedic.core.errors import ConfigError, PermanentError

_CHECKS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list[str]": (list,),
    "dict": (dict,),
}


def _coerce(spec: ParamSpec, value: Any) -> Any:
    """Coerce rendered template strings to the declared type; refuse anything else."""
    if spec.type == "int" and isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    if spec.type == "float" and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if spec.type == "bool" and isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    ok = _CHECKS[spec.type]
    if not isinstance(value, ok) or (spec.type in {"int", "float"} and isinstance(value, bool)):
        raise PermanentError(
            f"argument {spec.name!r} must be {spec.type}, got {type(value).__name__}",
            reason="bad_arguments",
        )
    if spec.type == "list[str]" and isinstance(value, list) and not all(isinstance(v, str) for v in value):
        raise PermanentError(f"argument {spec.name!r} must be a list of strings", reason="bad_arguments")
    return value


def check_args(spec: ActionSpec, args: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``args`` against ``spec``: unknown names, missing required ones, types."""
    unknown = sorted(set(args) - {p.name for p in spec.params})
    if unknown:
        known = ", ".join(p.name for p in spec.params) or "none"
        raise PermanentError(
            f"{spec.name} does not take {', '.join(unknown)} (it takes: {known})",
            reason="bad_arguments",
        )
    out: dict[str, Any] = {}
    for p in spec.params:
        if p.name in args:
            out[p.name] = _coerce(p, args[p.name])
        elif p.required:
            raise PermanentError(f"{spec.name} needs argument {p.name!r}", reason="bad_arguments")
        elif p.default is not None:
            out[p.name] = p.default
    return out


class ExecutorRegistry:
    """Every known action, each served by one executor."""

    def __init__(self, executors: Iterable[Executor] = ()) -> None:
        self._by_action: dict[str, tuple[ActionSpec, Executor]] = {}
        for ex in executors:
            self.add(ex)

    def add(self, executor: Executor) -> None:
        for spec in executor.actions():
            self._by_action[spec.name] = (spec, executor)

    def names(self) -> list[str]:
        return sorted(self._by_action)

    def specs(self) -> list[ActionSpec]:
        return [self._by_action[n][0] for n in self.names()]

    def executors(self) -> list[Executor]:
        seen: dict[int, Executor] = {}
        for _, ex in self._by_action.values():
            seen.setdefault(id(ex), ex)
        return list(seen.values())

    def suggest(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(), n=1)
        return f"did you mean {close[0]!r}?" if close else "run `paramedic actions` to list them"

    def spec(self, name: str) -> ActionSpec:
        try:
            return self._by_action[name][0]
        except KeyError:
            raise PermanentError(f"unknown action {name!r}; {self.suggest(name)}", reason="unknown_action") from None

    def executor(self, name: str) -> Executor:
        self.spec(name)
        return self._by_action[name][1]

    def request(
        self,
        action: str,
        args: Mapping[str, Any],
        *,
        timeout: float | None = None,
        run_id: str = "",
        step: int = 0,
    ) -> ActionRequest:
        spec = self.spec(action)
        return ActionRequest(
            action=action,
            args=check_args(spec, args),
            timeout=timeout if timeout is not None else spec.default_timeout,
            run_id=run_id,
            step=step,
        )


def build_registry(sections: Mapping[str, Mapping[str, Any]]) -> ExecutorRegistry:
    """Build every executor from its ``executors:`` config section (absent sections: defaults)."""
    from paramedic.actions import factories

    registry = ExecutorRegistry()
    known = set(factories.FACTORIES)
    unknown = sorted(set(sections) - known)
    if unknown:
        raise ConfigError(f"executors: unknown section(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    for name, factory in factories.FACTORIES.items():
        for ex in factory(sections.get(name, {})):
            registry.add(ex)
    return registry
