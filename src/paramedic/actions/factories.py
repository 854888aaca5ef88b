"""The list of executor families and how each is built from its config section.

Each factory takes the ``executors.<family>`` mapping from ``paramedic.yaml`` and returns the
executors it configures. Adding a family is one entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from paramedic.actions.base import Executor

Factory = Callable[[Mapping[str, Any]], Sequence[Executor]]


def _shell(cfg: Mapping[str, Any]) -> Sequence[Executor]:
    from paramedic.actions.shell import ShellExecutor

    return [ShellExecutor.from_config(cfg)]


def _http(cfg: Mapping[str, Any]) -> Sequence[Executor]:
    from paramedic.actions.http import HttpExecutor

    return [HttpExecutor.from_config(cfg)]


def _supervisor(cfg: Mapping[str, Any]) -> Sequence[Executor]:
    from paramedic.actions.supervisor import SupervisorExecutor

    return [SupervisorExecutor.from_config(cfg)]


def _haproxy(cfg: Mapping[str, Any]) -> Sequence[Executor]:
    from paramedic.actions.haproxy import HaproxyExecutor

    return [HaproxyExecutor.from_config(cfg)]


def _release(cfg: Mapping[str, Any]) -> Sequence[Executor]:
    from paramedic.actions.release import ReleaseExecutor

    return [ReleaseExecutor.from_config(cfg)]


def _kubernetes(cfg: Mapping[str, Any]) -> Sequence[Executor]:
    from paramedic.actions.kubernetes import KubernetesExecutor

    return [KubernetesExecutor.from_config(cfg)]


def _systemd(cfg: Mapping[str, Any]) -> Sequence[Executor]:
    from paramedic.actions.systemd import SystemdExecutor

    return [SystemdExecutor.from_config(cfg)]


def _process(cfg: Mapping[str, Any]) -> Sequence[Executor]:
    from paramedic.actions.process import ProcessExecutor

    return [ProcessExecutor.from_config(cfg)]


FACTORIES: dict[str, Factory] = {
    "shell": _shell,
    "http": _http,
    "supervisor": _supervisor,
    "haproxy": _haproxy,
    "release": _release,
    "kubernetes": _kubernetes,
    "systemd": _systemd,
    "process": _process,
}
