"""``release.deploy|rollback``: switch a plain host between releases kept side by side.

Layout per app: ``<root>/releases/<version>/`` and a ``<root>/current`` symlink. A switch creates
a temporary symlink and ``os.replace``s it over ``current``, so readers see the old release or the
new one, never neither. The app is then restarted (an argv run without a shell, or a POST to a
URL) and, when a ``health_url`` is configured, polled until healthy.

Every deploy and rollback is appended to ``<root>/.paramedic-releases.json`` with the version, the
time, the previous version and a status: ``pending`` while the switch is in flight, ``healthy``
once the health check passed, ``bad`` when it failed or a rollback left it. A healthy release is
only *known-good* once it stayed live for the app's ``soak`` (default 10m) without being left by a
rollback: two bad deploys a minute apart are both unproven, so ``release.rollback`` goes to the
newest known-good release (the last one that soaked), skipping bad and unproven ones, and marks
the release it leaves ``bad``. A rollback is recorded ``healthy`` too, never good by itself: if
its verification fails and it is rolled back again within the soak, it is skipped as well.
``history()`` serves the file as "recent changes" evidence.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx

from paramedic.actions.base import ActionRequest, ActionResult, ActionSpec, Inverse, ParamSpec, TargetState
from paramedic.actions.shell import run_argv
from paramedic.core.durations import parse_duration
from paramedic.core.errors import ConfigError, PermanentError, RetryableError

HISTORY_FILE = ".paramedic-releases.json"
LOCK_FILE = ".paramedic-releases.lock"
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")

DEPLOY = ActionSpec(
    name="release.deploy",
    summary="Point <root>/current at releases/<version> atomically, restart, check health.",
    params=(
        ParamSpec("version", "str", help="directory name under <root>/releases"),
        ParamSpec("app", "str", required=False, help="app from executors.release.apps"),
    ),
    idempotent=True,
    default_timeout=120.0,
)
ROLLBACK = ActionSpec(
    name="release.rollback",
    summary="Go back to the previous known-good release and mark the current one bad.",
    params=(ParamSpec("app", "str", required=False, help="app from executors.release.apps"),),
    idempotent=False,
    default_timeout=120.0,
)

Status = Literal["pending", "healthy", "known-good", "bad"]
Kind = Literal["deploy", "rollback"]
_STATUSES: tuple[Status, ...] = ("pending", "healthy", "known-good", "bad")
DEFAULT_SOAK = 600.0  # seconds a release must stay live, healthy, before it counts as known-good


@dataclass(frozen=True, slots=True)
class AppConfig:
    """One app deployed with the releases/current layout."""

    name: str
    root: Path
    restart_argv: tuple[str, ...] = ()
    restart_url: str | None = None
    health_url: str | None = None
    health_timeout: float = 30.0
    soak: float = DEFAULT_SOAK

    @classmethod
    def from_config(cls, name: str, cfg: Mapping[str, Any]) -> AppConfig:
        where = f"executors.release.apps.{name}"
        if not cfg.get("root"):
            raise ConfigError(f"{where}.root is required")
        argv = cfg.get("restart_argv") or ()
        if not isinstance(argv, list | tuple) or not all(isinstance(a, str) for a in argv):
            raise ConfigError(f"{where}.restart_argv must be a list of strings")
        try:
            health_timeout = parse_duration(cfg.get("health_timeout", 30)).total_seconds()
            soak = parse_duration(cfg.get("soak", DEFAULT_SOAK)).total_seconds()
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        return cls(
            name=name,
            root=Path(str(cfg["root"])),
            restart_argv=tuple(argv),
            restart_url=cfg.get("restart_url"),
            health_url=cfg.get("health_url"),
            health_timeout=health_timeout,
            soak=soak,
        )

    def restart_text(self) -> str:
        if self.restart_argv:
            return f"run {list(self.restart_argv)!r}"
        if self.restart_url:
            return f"POST {self.restart_url}"
        return "restart nothing (no restart_argv or restart_url configured)"


@dataclass(frozen=True, slots=True)
class ReleaseRecord:
    """One deploy or rollback, as written to the history file."""

    app: str
    action: Kind
    version: str
    previous: str | None
    at: datetime
    status: Status

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"at": self.at.isoformat()}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ReleaseRecord:
        return cls(
            app=str(raw["app"]),
            action="rollback" if raw.get("action") == "rollback" else "deploy",
            version=str(raw["version"]),
            previous=None if raw.get("previous") is None else str(raw["previous"]),
            at=datetime.fromisoformat(str(raw["at"])),
            status=_status(raw.get("status")),
        )


def read_history(root: Path) -> list[ReleaseRecord]:
    """Records of one app root, oldest first; a missing file is an empty history."""
    path = root / HISTORY_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise PermanentError(f"cannot read {path}: {exc}", reason="bad_history") from exc
    try:
        return [ReleaseRecord.from_json(r) for r in raw["records"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentError(f"{path} is not a release history: {exc}", reason="bad_history") from exc


def _write_history(root: Path, records: Sequence[ReleaseRecord]) -> None:
    path = root / HISTORY_FILE
    tmp = root / f".{HISTORY_FILE}.{uuid.uuid4().hex}.tmp"
    tmp.write_text(json.dumps({"format": 1, "records": [r.to_json() for r in records]}, indent=1))
    os.replace(tmp, path)


def current_version(root: Path) -> str | None:
    """The release ``<root>/current`` points at, or None when there is no link yet."""
    link = root / "current"
    if not link.is_symlink():
        if link.exists():
            raise PermanentError(f"{link} exists but is not a symlink", reason="bad_layout")
        return None
    target = Path(os.readlink(link))
    if target.parent.name != "releases":
        raise PermanentError(f"{link} points at {target}, not into releases/", reason="bad_layout")
    return target.name


def switch(root: Path, version: str) -> None:
    """Atomically point ``<root>/current`` at ``releases/<version>`` (relative link)."""
    tmp = root / f".current.{uuid.uuid4().hex}.tmp"
    os.symlink(Path("releases") / version, tmp)
    try:
        os.replace(tmp, root / "current")
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def effective_status(
    records: Sequence[ReleaseRecord], *, now: datetime, soak: float = DEFAULT_SOAK
) -> dict[str, Status]:
    """Each version's status now, from its latest record: a ``healthy`` release that stayed live for
    ``soak`` seconds — until the next change, or until ``now`` if it is still live — is ``known-good``."""
    out: dict[str, Status] = {}
    for i, r in enumerate(records):  # a version's latest record decides: a re-deploy soaks again
        until = records[i + 1].at if i + 1 < len(records) else now
        soaked = r.status == "healthy" and (until - r.at).total_seconds() >= soak
        out[r.version] = "known-good" if soaked else r.status
    return out


def rollback_target(
    records: Sequence[ReleaseRecord], current: str | None, *, now: datetime | None = None, soak: float = DEFAULT_SOAK
) -> str | None:
    """The newest release, other than ``current``, that is known-good: bad and unproven ones
    (healthy but live for less than ``soak``) are skipped.

    A version with no record of its own that was live before a recorded deploy (``previous``)
    counts as good: it was there before paramedic kept a history."""
    status = effective_status(records, now=now or datetime.now(UTC), soak=soak)
    for r in reversed(records):
        for candidate in (r.version, r.previous):
            if candidate is None or candidate == current:
                continue
            if status.get(candidate, "known-good") == "known-good":
                return candidate
    return None


@contextlib.contextmanager
def _app_lock(root: Path) -> Iterator[None]:
    """One deploy or rollback at a time per app root, across processes (flock)."""
    try:
        fd = os.open(root / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o644)
    except FileNotFoundError:
        raise PermanentError(f"release root {root} does not exist", reason="not_found") from None
    except OSError as exc:
        raise PermanentError(f"cannot lock {root}: {exc}", reason="forbidden") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RetryableError(f"another deploy or rollback is running on {root}", reason="busy") from None
        yield
    finally:
        os.close(fd)


class ReleaseExecutor:
    """Deploys and rolls back the apps of ``executors.release``."""

    def __init__(
        self,
        apps: Sequence[AppConfig] = (),
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._apps = {a.name: a for a in apps}
        self._clock = clock or (lambda: datetime.now(UTC))

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ReleaseExecutor:
        """``{apps: {name: {root, restart_argv | restart_url, health_url}}}``; a section with
        ``root`` at its top level is one app called ``default``."""
        apps = dict(cfg.get("apps") or {})
        if cfg.get("root"):
            apps.setdefault("default", {k: v for k, v in cfg.items() if k != "apps"})
        return cls([AppConfig.from_config(str(n), c or {}) for n, c in apps.items()])

    def actions(self) -> Sequence[ActionSpec]:
        return [DEPLOY, ROLLBACK]

    def history(self, app: str | None = None) -> list[ReleaseRecord]:
        """Every recorded deploy and rollback, oldest first (all apps unless ``app`` is given)."""
        apps = [self._app(app)] if app is not None else list(self._apps.values())
        now, records = self._clock(), []
        for a in apps:
            own = read_history(a.root)
            status = effective_status(own, now=now, soak=a.soak)
            last = {r.version: i for i, r in enumerate(own)}  # a version's latest record shows its status now
            records += [_with_status(r, status[r.version]) if last[r.version] == i else r for i, r in enumerate(own)]
        return sorted(records, key=lambda r: r.at)

    def _app(self, name: str | None) -> AppConfig:
        if not self._apps:
            raise PermanentError("executors.release has no apps", reason="not_configured")
        if name is None:
            if len(self._apps) > 1:
                raise PermanentError(
                    f"several apps are configured ({', '.join(sorted(self._apps))}); give app",
                    reason="bad_arguments",
                )
            return next(iter(self._apps.values()))
        try:
            return self._apps[name]
        except KeyError:
            raise PermanentError(f"app {name!r} is not in executors.release.apps", reason="not_found") from None

    @staticmethod
    def _check_version(app: AppConfig, version: str) -> None:
        if not _VERSION.match(version):
            raise PermanentError(f"invalid release version {version!r}", reason="bad_arguments")
        if not (app.root / "releases" / version).is_dir():
            raise PermanentError(
                f"release {version!r} of {app.name} does not exist under {app.root}/releases",
                reason="not_found",
            )

    def _plan(self, request: ActionRequest) -> _Plan:
        """What a deploy or rollback would do now; raises when there is nothing to go to."""
        app = self._app(request.args.get("app"))
        if not (app.root / "releases").is_dir():
            raise PermanentError(f"{app.root}/releases does not exist", reason="not_found")
        live = current_version(app.root)
        records = read_history(app.root)
        kind: Kind = "deploy" if request.action == DEPLOY.name else "rollback"
        last = records[-1] if records else None
        if kind == "deploy":
            version = str(request.args["version"])
            self._check_version(app, version)
        elif last is not None and last.status == "pending" and live and last.version == live:
            version = live  # finish the rollback a crash or a retryable error interrupted
        else:
            target = rollback_target(records, live, now=self._clock(), soak=app.soak)
            if target is None or not (app.root / "releases" / target).is_dir():
                raise PermanentError(
                    f"{app.name}: no known-good release to roll back to from {live}"
                    f" (a release is known-good once it stayed live and healthy for {app.soak:g}s)",
                    reason="no_previous_release",
                )
            version = target
        resume = (
            last is not None and last.status == "pending" and last.action == kind and last.version == version == live
        )
        settled = (
            kind == "deploy"
            and last is not None
            and last.status in ("healthy", "known-good")
            and last.version == version == live
        )
        return _Plan(
            app=app,
            kind=kind,
            live=live,
            version=version,
            previous=last.previous if resume and last is not None else live,
            resume=resume,
            settled=settled,
        )

    async def execute(self, request: ActionRequest) -> ActionResult:
        started = time.monotonic()
        app = self._app(request.args.get("app"))
        with _app_lock(app.root):
            plan = self._plan(request)
            if plan.settled:
                return ActionResult(summary=f"{app.name} is already at {plan.version}", changed=False)
            records = read_history(app.root)
            if plan.resume:
                records = records[:-1]
            else:
                try:
                    switch(app.root, plan.version)
                except OSError as exc:
                    raise PermanentError(f"cannot switch {app.root}/current: {exc}", reason="switch_failed") from exc
                if plan.kind == "rollback":
                    records = [_with_status(r, "bad") if r.version == plan.live else r for r in records]
            record = ReleaseRecord(
                app=app.name,
                action=plan.kind,
                version=plan.version,
                previous=plan.previous,
                at=self._clock(),
                status="pending",
            )
            # Written before the restart: a retry or a resumed run finishes this change
            # instead of starting another one.
            _write_history(app.root, [*records, record])
            failure: PermanentError | None = None
            try:
                await self._restart(app, request)
                remaining = request.timeout - (time.monotonic() - started)
                await self._wait_healthy(app, min(app.health_timeout, max(remaining, 1.0)))
            except PermanentError as exc:
                failure = exc
            status: Status = "bad" if failure else "healthy"  # known-good only after the soak
            _write_history(app.root, [*records, _with_status(record, status)])
        if failure is not None:
            raise PermanentError(
                f"{app.name} switched to {plan.version} but {failure}", reason=failure.reason
            ) from failure
        verb = "rolled back" if plan.kind == "rollback" else "deployed"
        return ActionResult(
            summary=f"{verb} {app.name} to {plan.version} (was {plan.previous or 'nothing'})",
            details={"app": app.name, "version": plan.version, "previous": plan.previous or ""},
        )

    def inverse(self, request: ActionRequest, result: ActionResult) -> Inverse | None:
        """A deploy is undone by deploying the release that was live before it (a rollback has
        no inverse: paramedic does not roll forward onto a release it just marked bad)."""
        previous = result.details.get("previous", "")
        if request.action != DEPLOY.name or not previous:
            return None
        return Inverse(DEPLOY.name, {"version": previous, "app": result.details.get("app", request.args.get("app"))})

    async def _restart(self, app: AppConfig, request: ActionRequest) -> None:
        timeout = request.timeout
        if app.restart_argv:
            done = await run_argv(app.restart_argv, timeout=timeout)
            if done.code != 0:
                raise PermanentError(
                    f"restart {app.restart_argv[0]} exited with {done.code}: {done.output.strip()[-300:]}",
                    reason="restart_failed",
                )
        elif app.restart_url:
            try:
                async with httpx.AsyncClient(timeout=timeout) as client:
                    resp = await client.post(app.restart_url)
            except httpx.HTTPError as exc:
                raise RetryableError(f"restart POST {app.restart_url} failed: {exc}", reason="unreachable") from exc
            if resp.status_code >= 500:
                raise RetryableError(
                    f"restart POST {app.restart_url} answered {resp.status_code}",
                    reason="server_error",
                )
            if not resp.is_success:
                raise PermanentError(
                    f"restart POST {app.restart_url} answered {resp.status_code}",
                    reason="restart_failed",
                )

    @staticmethod
    async def _wait_healthy(app: AppConfig, within: float) -> None:
        if not app.health_url:
            return
        deadline = time.monotonic() + within
        last = "no answer"
        async with httpx.AsyncClient(timeout=min(5.0, within)) as client:
            while True:
                try:
                    resp = await client.get(app.health_url)
                    if resp.is_success:
                        return
                    last = f"HTTP {resp.status_code}"
                except httpx.HTTPError as exc:
                    last = str(exc) or type(exc).__name__
                if time.monotonic() >= deadline:
                    raise PermanentError(
                        f"{app.health_url} not healthy within {within:g}s ({last})",
                        reason="unhealthy",
                    )
                await asyncio.sleep(0.2)

    async def describe(self, request: ActionRequest) -> str:
        plan = self._plan(request)
        app = plan.app
        if plan.settled:
            return f"{app.name} is already at {plan.version}; nothing to do"
        if plan.resume:
            steps = [f"finish the interrupted {plan.kind} to {plan.version} (already linked)"]
        else:
            steps = [f"switch {app.root}/current from {_rel(plan.live)} to {_rel(plan.version)}"]
            if plan.kind == "rollback":
                steps[0] += f" (previous known-good; {plan.live} would be marked bad)"
        steps.append(app.restart_text())
        if app.health_url:
            steps.append(f"wait up to {app.health_timeout:g}s for {app.health_url} to answer 2xx")
        return f"would {'; then '.join(steps)}"

    async def read_state(self, request: ActionRequest) -> TargetState:
        app = self._app(request.args.get("app"))
        current = current_version(app.root)
        records = read_history(app.root)
        fields = {
            "app": app.name,
            "version": current or "",
            "rollback_to": rollback_target(records, current, now=self._clock(), soak=app.soak) or "",
            "last_change": records[-1].at.isoformat() if records else "",
        }
        healthy: bool | None = None
        detail = f"current → {_rel(current)}"
        if app.health_url:
            try:
                async with httpx.AsyncClient(timeout=min(5.0, request.timeout)) as client:
                    resp = await client.get(app.health_url)
                healthy = resp.is_success
                detail += f"; {app.health_url} answered {resp.status_code}"
            except httpx.HTTPError as exc:
                healthy = False
                detail += f"; {app.health_url} unreachable: {exc}"
        return TargetState(target=app.name, healthy=healthy, detail=detail, fields=fields)

    async def known_targets(self, scope: Mapping[str, str]) -> Sequence[str] | None:
        return None  # an app is one target; its hosts are not known here


@dataclass(frozen=True, slots=True)
class _Plan:
    app: AppConfig
    kind: Kind
    live: str | None  # what current points at now
    version: str  # what it will point at
    previous: str | None  # recorded as the release this change replaced
    resume: bool  # an interrupted change of the same kind to the same version
    settled: bool  # a deploy already done and healthy: nothing to do


def _status(raw: object) -> Status:
    for status in _STATUSES:
        if raw == status:
            return status
    raise ValueError(f"unknown release status {raw!r}")


def _with_status(record: ReleaseRecord, status: Status) -> ReleaseRecord:
    return ReleaseRecord(
        app=record.app,
        action=record.action,
        version=record.version,
        previous=record.previous,
        at=record.at,
        status=status,
    )


def _rel(version: str | None) -> str:
    return f"releases/{version}" if version else "nothing"
