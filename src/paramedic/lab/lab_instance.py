"""The lab's instance launcher: the sample service as deployed from a release, with a capacity.

``python -m paramedic.lab.lab_instance serve --release-root R --port N --name NAME --fault-dir D``
runs one sample service instance the way a real deploy would: it reads
``R/current/release.json`` (``{"version": "v2", "error_rate": 0.6}``) at start, so which
release an instance serves is decided by the ``current`` symlink that ``release.deploy`` and
``release.rollback`` switch, and a restart is what makes a switch take effect. It also gives the
instance a finite capacity: ``GET /`` is served one request at a time with a fixed service time
(``--capacity`` requests per second), so more load than the pool can carry queues up and shows
as latency, which is what adding instances cures.

``python -m paramedic.lab.lab_instance restart --url RPC --group G`` restarts every process of a
supervisord group (the release executor's ``restart_argv``).

A crash loop here lasts ``CRASH_AFTER`` seconds per start (longer than the plain sample
service's), the time a real service takes to load its config and die on it: long enough for
Prometheus to scrape it up once, so each restart ends one firing episode and starts another.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from paramedic.actions.supervisor import make_proxy
from paramedic.lab import sample_service as svc_mod

CRASH_AFTER = 1.2


class _Release:
    """What the ``current`` release says about how this instance behaves."""

    def __init__(self, root: Path | None) -> None:
        self.version = "unversioned"
        self.error_rate = 0.0
        if root is None:
            return
        raw: dict[str, Any] = json.loads((root / "current" / "release.json").read_text())
        self.version = str(raw.get("version", "unknown"))
        self.error_rate = min(1.0, max(0.0, float(raw.get("error_rate", 0.0))))


class _LabService(svc_mod.SampleService):
    def __init__(self, *, name: str, fault_dir: Path | None, release: _Release, capacity: float) -> None:
        super().__init__(name=name, fault_dir=fault_dir)
        self.release = release
        self.error_rate = release.error_rate
        self.service_time = 1.0 / capacity if capacity > 0 else 0.0
        self.worker = threading.Lock()  # one request of GET / at a time: a finite capacity

    def metrics(self) -> str:
        return (
            super().metrics()
            + "# HELP sample_release_info The release this instance was started from.\n"
            + "# TYPE sample_release_info gauge\n"
            + f'sample_release_info{{version="{self.release.version}"}} 1\n'
        )


class _LabHandler(svc_mod._Handler):
    def _route(self, svc: svc_mod.SampleService, method: str, path: str, query: dict[str, str]) -> tuple[int, str, str]:
        if method == "GET" and path == "/" and isinstance(svc, _LabService) and svc.service_time:
            with svc.worker:
                time.sleep(svc.service_time)
        return super()._route(svc, method, path, query)


def _exit_after(delay: float) -> None:
    def die() -> None:
        sys.stderr.flush()
        os._exit(1)

    timer = threading.Timer(delay, die)
    timer.daemon = True
    timer.start()


def serve(*, port: int, name: str, fault_dir: Path | None, release_root: Path | None, capacity: float) -> None:
    release = _Release(release_root)
    service = _LabService(name=name, fault_dir=fault_dir, release=release, capacity=capacity)
    try:
        server = svc_mod._Server((svc_mod.HOST, port), _LabHandler)
    except OSError as exc:
        print(f"lab_instance {name}: cannot bind {svc_mod.HOST}:{port}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    server.service = service
    looping = service.crashloop_armed()
    print(
        f"lab_instance {name} release={release.version} pid={os.getpid()} port={port}"
        + (f" crashloop marker present, exiting in {CRASH_AFTER}s" if looping else ""),
        file=sys.stderr,
        flush=True,
    )
    if looping:
        _exit_after(CRASH_AFTER)
    with server:
        server.serve_forever(poll_interval=0.2)


def restart_group(url: str, group: str, timeout: float) -> None:
    with make_proxy(url, timeout=timeout) as proxy:
        proxy.supervisor.stopProcessGroup(group, True)
        proxy.supervisor.startProcessGroup(group, True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m paramedic.lab.lab_instance")
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run one instance")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--name", required=True)
    s.add_argument("--fault-dir", type=Path)
    s.add_argument("--release-root", type=Path)
    s.add_argument("--capacity", type=float, default=0.0, help="GET / per second (0: unlimited)")
    r = sub.add_parser("restart", help="restart every process of a supervisord group")
    r.add_argument("--url", required=True)
    r.add_argument("--group", required=True)
    r.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    if args.cmd == "restart":
        restart_group(args.url, args.group, args.timeout)
        return
    with contextlib.suppress(KeyboardInterrupt):
        serve(
            port=args.port,
            name=args.name,
            fault_dir=args.fault_dir,
            release_root=args.release_root,
            capacity=args.capacity,
        )


if __name__ == "__main__":
    main()
