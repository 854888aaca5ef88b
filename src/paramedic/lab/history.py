"""The lab's alert history: two days of ``ALERTS`` back-filled into a real Prometheus.

A known sequence of firing episodes — one alert restarted within its rate limit, then over it,
one that resolves before ``require.firing_for``, one that flaps, one inside a change freeze, one
without the label its runbook templates, and one whose remediation keeps failing until its
circuit breaker opens — written as OpenMetrics, turned into TSDB blocks by
``promtool tsdb create-blocks-from openmetrics`` and served by ``prometheus``. The lab test and
``docs/adoption.md`` backtest the lab's runbooks against it; ``EXPECTED`` is what the guardrails'
own rules predict for that sequence.

Samples are written every ``STEP`` while an episode fires, and a NaN at its end (a back-filled
series has no stale markers, and a NaN reads as "not firing" to the reader).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday; the history covers two days from here
END = START + timedelta(days=2)
STEP = timedelta(seconds=15)


@dataclass(frozen=True, slots=True)
class Fired:
    alertname: str
    labels: tuple[tuple[str, str], ...]
    at: timedelta  # after START
    lasted: timedelta


def _m(minutes: float) -> timedelta:
    return timedelta(minutes=minutes)


def _web(instance: str | None) -> tuple[tuple[str, str], ...]:
    labels = [("service", "web"), ("severity", "page")]
    return tuple(sorted([*labels, ("instance", instance)] if instance else labels))


def _api() -> tuple[tuple[str, str], ...]:
    return (("instance", "api-1"), ("service", "api"), ("severity", "page"))


DAY = timedelta(days=1)
EPISODES: tuple[Fired, ...] = (
    # web-1: two restarts within the rate limit (2 per hour), then refused, then too short
    Fired("WebDown", _web("web-1"), _m(10 * 60), _m(3)),
    Fired("WebDown", _web("web-1"), _m(10 * 60 + 20), _m(3)),
    Fired("WebDown", _web("web-1"), _m(10 * 60 + 40), _m(3)),
    Fired("WebDown", _web("web-1"), _m(10 * 60 + 50), timedelta(seconds=30)),
    # web-2 flaps: six episodes five minutes apart
    *(Fired("WebDown", _web("web-2"), _m(14 * 60 + 5 * k), _m(2)) for k in range(6)),
    # web-3 fires inside the change freeze of day two
    Fired("WebDown", _web("web-3"), DAY + _m(12 * 60 + 10), _m(10)),
    # a WebDown without the instance label the runbook's target reads
    Fired("WebDown", _web(None), DAY + _m(16 * 60), _m(5)),
    # api-1: restarts that do not bring it back, until the breaker opens; then a trial that holds
    Fired("ApiDown", _api(), DAY + _m(8 * 60), _m(10)),
    Fired("ApiDown", _api(), DAY + _m(8 * 60 + 20), _m(10)),
    Fired("ApiDown", _api(), DAY + _m(8 * 60 + 40), _m(1)),
    Fired("ApiDown", _api(), DAY + _m(9 * 60), _m(1)),
    # a failure mode no runbook knows: paged to a human every time
    *(Fired("DiskFull", (("instance", "db-1"), ("service", "db")), DAY + _m(60 * h), _m(20)) for h in (1, 5, 9)),
)

RUNBOOKS = """\
apiVersion: paramedic/v1
runbooks:
  - name: restart-web
    owner: team-web
    description: A web instance stops answering; restart it.
    match: {alertname: WebDown, labels: {service: web}}
    target: "{{ labels.instance }}"
    mode: approve            # the ceiling its owner allows; start it in observe by hand
    require: {firing_for: 1m}
    guardrails:
      rate_limit: {max: 2, per: 1h, scope: target}
    steps:
      - action: supervisor.restart
        with: {program: "{{ labels.instance }}"}
    verify:
      alert_resolved: {within: 5m}
    promote: {after: 3, min_success_rate: 0.9}
  - name: restart-api
    owner: team-api
    description: The API stops answering; restart it.
    match: {alertname: ApiDown}
    target: "{{ labels.instance }}"
    mode: observe
    guardrails:
      circuit_breaker: {failures: 2, window: 1h, cooldown: 30m}
    steps:
      - action: supervisor.restart
        with: {program: "{{ labels.instance }}"}
    verify:
      prometheus: {query: 'up{instance="{{ labels.instance }}"} == 1', within: 2m}
"""

CONFIG = """\
automation:
  freeze:
    - {name: release-freeze, start: "2026-11-03T12:00:00Z", end: "2026-11-03T13:00:00Z"}
"""

# What the guardrails' rules predict for EPISODES (see docs/adoption.md for the walk-through).
EXPECTED = {
    "restart-web": {
        "matched": 12,
        "acted": 4,
        "refusals": {"rate_limited": 4, "not_firing_long_enough": 1, "flapping": 1, "frozen": 1},
        "plan_errors": 1,
        "targets": ["web-1", "web-2"],
        "weak": 4,
    },
    "restart-api": {
        "matched": 4,
        "acted": 3,
        "failed": 2,
        "refusals": {"circuit_open": 1},
        "targets": ["api-1"],
        "weak": 1,
    },
}


def _series(f: Fired) -> str:
    labels = [("alertname", f.alertname), ("alertstate", "firing"), *f.labels]
    body = ",".join(f'{k}="{v}"' for k, v in sorted(labels))
    return "ALERTS{" + body + "}"


def openmetrics(episodes: tuple[Fired, ...] = EPISODES) -> str:
    """The ``ALERTS`` samples of the episodes, series by series, in time order, ending ``# EOF``."""
    by_series: dict[str, list[tuple[float, str]]] = {}
    for f in episodes:
        samples = by_series.setdefault(_series(f), [])
        at, end = START + f.at, START + f.at + f.lasted
        while at < end:
            samples.append((at.timestamp(), "1"))
            at += STEP
        samples.append((end.timestamp(), "NaN"))
    lines = ["# HELP ALERTS Alerts, as Prometheus writes them while they fire.", "# TYPE ALERTS gauge"]
    for series, samples in sorted(by_series.items()):
        lines += [f"{series} {value} {ts:.0f}" for ts, value in sorted(samples)]
    return "\n".join([*lines, "# EOF", ""])


def backfill(workdir: Path, *, promtool: str = "promtool") -> Path:
    """Write the history as TSDB blocks under ``workdir/data``; returns that folder."""
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / "alerts.om"
    source.write_text(openmetrics())
    data = workdir / "data"
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return data


class HistoryPrometheus:
    """A real Prometheus serving a back-filled history on a loopback port (stopped on exit)."""

    def __init__(self, workdir: Path, *, port: int, binary: str = "", promtool: str = "") -> None:
        self.workdir = workdir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.binary = binary or shutil.which("prometheus") or "prometheus"
        self.promtool = promtool or shutil.which("promtool") or "promtool"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> HistoryPrometheus:
        data = backfill(self.workdir, promtool=self.promtool)
        config = self.workdir / "prometheus.yml"
        config.write_text("global: {evaluation_interval: 15s}\nscrape_configs: []\n")
        log = (self.workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={data}",
                "--storage.tsdb.retention.time=100y",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}; see {self.workdir}/prometheus.log")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError("prometheus did not become ready within 30s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


def main() -> None:  # pragma: no cover - the documented way to serve the history by hand
    """``python -m paramedic.lab.history --workdir DIR --port 9391``: serve the history, write the
    lab's runbooks and config next to it, until Ctrl-C."""
    import argparse
    import signal

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)  # a plain kill stops Prometheus too

    parser = argparse.ArgumentParser(description="serve the lab's alert history on a real Prometheus")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=9391)
    args = parser.parse_args()
    (args.workdir / "runbooks").mkdir(parents=True, exist_ok=True)
    (args.workdir / "runbooks" / "lab.yaml").write_text(RUNBOOKS)
    (args.workdir / "paramedic.yaml").write_text(CONFIG)
    with HistoryPrometheus(args.workdir / "prometheus", port=args.port) as prom:
        print(f"history on {prom.url} ({START:%Y-%m-%d} to {END:%Y-%m-%d}); runbooks in {args.workdir}/runbooks")
        try:
            while prom.proc is not None and prom.proc.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":  # pragma: no cover
    main()
