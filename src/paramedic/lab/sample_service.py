"""The lab's patient: a small HTTP service whose faults paramedic learns to heal.

Run it as ``python -m paramedic.lab.sample_service --port N --name NAME [--fault-dir DIR]``; the
lab's supervisord starts several instances of it. It binds 127.0.0.1 only and uses the standard
library only, so it starts fast and behaves the same everywhere.

Endpoints: ``GET /healthz``, ``GET /`` (JSON), ``GET /metrics`` (Prometheus text format, or
OpenMetrics with exemplars when the scraper asks for it) and the fault injectors under ``POST /fault/…``.
Each request belongs to a trace: the W3C ``traceparent`` header's trace ID when the caller sends one,
else a random one; the latency histogram's buckets carry the latest request's trace ID as an exemplar,
so Prometheus (with exemplar storage) can say which requests were slow. The faults:

- ``hang``: every later request blocks forever while the process stays alive (only a restart helps);
- ``crash``: exit with status 1 right after answering;
- ``crashloop``: write a marker in the fault dir; while it exists, every start exits with status 1
  about 0.3 s later (``clear`` removes it);
- ``errors?rate=0.5``: that fraction of ``GET /`` is answered 500;
- ``slow?ms=500``: ``GET /`` and ``GET /healthz`` wait that long first;
- ``leak``: every request keeps another MiB, so ``sample_memory_bytes`` grows;
- ``clear``: remove every fault that a live process can still clear.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import resource
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"
CRASH_DELAY = 0.3
LEAK_STEP = 1 << 20
LEAK_CAP = 256 << 20
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_PATHS = frozenset({"/", "/healthz", "/metrics"})
_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
OPENMETRICS = "application/openmetrics-text"


def trace_id_of(traceparent: str | None) -> str:
    """The trace ID of a W3C ``traceparent`` header, or a new random one."""
    found = _TRACEPARENT.match((traceparent or "").strip().lower())
    if found and found.group(1) != "0" * 32:
        return found.group(1)
    return f"{random.getrandbits(128):032x}"


def resident_memory() -> int:
    """Resident set size in bytes (``/proc`` on Linux, peak RSS elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        scale = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _exit_soon(delay: float) -> None:
    """Exit with status 1 after ``delay`` seconds, from a thread (the answer goes out first)."""

    def die() -> None:
        sys.stderr.flush()
        os._exit(1)

    timer = threading.Timer(delay, die)
    timer.daemon = True
    timer.start()


class SampleService:
    """State of one instance: its faults and its metrics, guarded by one lock."""

    def __init__(self, *, name: str, fault_dir: Path | None) -> None:
        self.name = name
        self.fault_dir = fault_dir
        self.started = time.time()
        self.hung = threading.Event()
        self.lock = threading.Lock()
        self.error_rate = 0.0
        self.slow_ms = 0
        self.leaking = False
        self.leaked: list[bytes] = []
        self.requests: dict[str, int] = {}
        self.errors = 0
        self.bucket_counts = [0] * len(BUCKETS)
        self.latency_sum = 0.0
        self.latency_count = 0
        self.exemplars: list[tuple[str, float, float] | None] = [None] * (len(BUCKETS) + 1)

    @property
    def marker(self) -> Path | None:
        return self.fault_dir / f"{self.name}.crashloop" if self.fault_dir else None

    def crashloop_armed(self) -> bool:
        return self.marker is not None and self.marker.exists()

    def observe(self, path: str, status: int, seconds: float, trace_id: str = "") -> None:
        key = path if path in _PATHS else ("/fault" if path.startswith("/fault/") else "other")
        with self.lock:
            if trace_id and path != "/metrics":
                slot = next((i for i, bound in enumerate(BUCKETS) if seconds <= bound), len(BUCKETS))
                self.exemplars[slot] = (trace_id, seconds, time.time())
            self.requests[key] = self.requests.get(key, 0) + 1
            if status >= 500:
                self.errors += 1
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self.bucket_counts[i] += 1
            self.latency_sum += seconds
            self.latency_count += 1
            if self.leaking and len(self.leaked) * LEAK_STEP < LEAK_CAP:
                self.leaked.append(b"\x01" * LEAK_STEP)  # real, touched pages: RSS grows

    def faults(self) -> list[str]:
        active = [name for name, on in (("leak", self.leaking), ("hang", self.hung.is_set())) if on]
        if self.error_rate:
            active.append(f"errors={self.error_rate:g}")
        if self.slow_ms:
            active.append(f"slow={self.slow_ms}ms")
        if self.crashloop_armed():
            active.append("crashloop")
        return active

    def openmetrics(self) -> str:
        """The same metrics in OpenMetrics, the histogram's buckets with exemplars."""

        def exemplar(i: int) -> str:
            ex = self.exemplars[i]
            return f' # {{trace_id="{ex[0]}"}} {ex[1]:.6f} {ex[2]:.3f}' if ex else ""

        with self.lock:
            lines = [
                "# TYPE http_requests counter",
                "# HELP http_requests Requests answered, by path.",
                *(f'http_requests_total{{path="{p}"}} {n}' for p, n in sorted(self.requests.items())),
                "# TYPE http_errors counter",
                "# HELP http_errors Requests answered with a 5xx status.",
                f"http_errors_total {self.errors}",
                "# TYPE http_request_duration_seconds histogram",
                "# HELP http_request_duration_seconds Time to answer a request.",
                *(
                    f'http_request_duration_seconds_bucket{{le="{b}"}} {n}{exemplar(i)}'
                    for i, (b, n) in enumerate(zip(BUCKETS, self.bucket_counts, strict=True))
                ),
                f'http_request_duration_seconds_bucket{{le="+Inf"}} {self.latency_count}{exemplar(len(BUCKETS))}',
                f"http_request_duration_seconds_sum {self.latency_sum:.6f}",
                f"http_request_duration_seconds_count {self.latency_count}",
            ]
        lines += [
            "# TYPE sample_memory_bytes gauge",
            f"sample_memory_bytes {resident_memory()}",
            "# TYPE sample_start_time_seconds gauge",
            f"sample_start_time_seconds {self.started:.3f}",
            "# TYPE sample_up gauge",
            "sample_up 1",
            "# EOF",
        ]
        return "\n".join(lines) + "\n"

    def metrics(self) -> str:
        with self.lock:
            lines = [
                "# HELP http_requests_total Requests answered, by path.",
                "# TYPE http_requests_total counter",
                *(f'http_requests_total{{path="{p}"}} {n}' for p, n in sorted(self.requests.items())),
                "# HELP http_errors_total Requests answered with a 5xx status.",
                "# TYPE http_errors_total counter",
                f"http_errors_total {self.errors}",
                "# HELP http_request_duration_seconds Time to answer a request.",
                "# TYPE http_request_duration_seconds histogram",
                *(
                    f'http_request_duration_seconds_bucket{{le="{b}"}} {n}'
                    for b, n in zip(BUCKETS, self.bucket_counts, strict=True)
                ),
                f'http_request_duration_seconds_bucket{{le="+Inf"}} {self.latency_count}',
                f"http_request_duration_seconds_sum {self.latency_sum:.6f}",
                f"http_request_duration_seconds_count {self.latency_count}",
            ]
        lines += [
            "# HELP sample_memory_bytes Resident memory of the sample service.",
            "# TYPE sample_memory_bytes gauge",
            f"sample_memory_bytes {resident_memory()}",
            "# HELP sample_start_time_seconds Unix time the instance started.",
            "# TYPE sample_start_time_seconds gauge",
            f"sample_start_time_seconds {self.started:.3f}",
            "# HELP sample_up 1 while the instance serves requests.",
            "# TYPE sample_up gauge",
            "sample_up 1",
        ]
        return "\n".join(lines) + "\n"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    service: SampleService


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "paramedic-sample/1"

    def log_message(self, format: str, *args: object) -> None:
        """Silent per request: the service logs one line per start, not per request."""

    def _send(self, status: int, body: str, content_type: str = "text/plain") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _serve(self, method: str) -> None:
        svc = self.server.service
        if svc.hung.is_set():
            threading.Event().wait()  # hung for good: only a restart clears it
        begun = time.monotonic()
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        trace_id = trace_id_of(self.headers.get("traceparent"))
        status, body, ctype = self._route(svc, method, url.path, query)
        self._send(status, body, ctype)
        svc.observe(url.path, status, time.monotonic() - begun, trace_id)
        if method == "POST" and status == 200:
            if url.path == "/fault/hang":
                svc.hung.set()
            elif url.path == "/fault/crash":
                _exit_soon(0.05)
            elif url.path == "/fault/crashloop":
                _exit_soon(CRASH_DELAY)

    def _route(self, svc: SampleService, method: str, path: str, query: dict[str, str]) -> tuple[int, str, str]:
        if method == "GET" and path in ("/", "/healthz") and svc.slow_ms:
            time.sleep(svc.slow_ms / 1000)
        if method == "GET" and path == "/healthz":
            return 200, "ok\n", "text/plain"
        if method == "GET" and path == "/":
            if svc.error_rate and random.random() < svc.error_rate:
                return 500, json.dumps({"error": "injected fault"}), "application/json"
            doc = {"name": svc.name, "pid": os.getpid(), "uptime": time.time() - svc.started}
            return 200, json.dumps({**doc, "faults": svc.faults()}), "application/json"
        if method == "GET" and path == "/metrics":
            if OPENMETRICS in (self.headers.get("Accept") or ""):
                return 200, svc.openmetrics(), f"{OPENMETRICS}; version=1.0.0"
            return 200, svc.metrics(), "text/plain; version=0.0.4"
        if method == "POST" and path.startswith("/fault/"):
            return self._fault(svc, path.removeprefix("/fault/"), query)
        return 404, "not found\n", "text/plain"

    @staticmethod
    def _fault(svc: SampleService, fault: str, query: dict[str, str]) -> tuple[int, str, str]:
        try:
            if fault == "errors":
                rate = float(query.get("rate", "1"))
                if not 0.0 <= rate <= 1.0:
                    raise ValueError(rate)
                svc.error_rate = rate
            elif fault == "slow":
                ms = int(query.get("ms", "500"))
                if not 0 <= ms <= 60_000:
                    raise ValueError(ms)
                svc.slow_ms = ms
        except ValueError:
            return 400, f"bad value for {fault}: {query}\n", "text/plain"
        if fault == "crashloop":
            if svc.marker is None:
                return 409, "crashloop needs --fault-dir\n", "text/plain"
            svc.marker.parent.mkdir(parents=True, exist_ok=True)
            svc.marker.write_text(f"{time.time():.3f}\n")
        elif fault == "leak":
            svc.leaking = True
        elif fault == "clear":
            with svc.lock:
                svc.error_rate, svc.slow_ms, svc.leaking, svc.leaked = 0.0, 0, False, []
            if svc.marker is not None:
                svc.marker.unlink(missing_ok=True)
        elif fault not in ("hang", "crash", "errors", "slow"):
            return 404, f"unknown fault {fault!r}\n", "text/plain"
        return 200, f"{fault}\n", "text/plain"

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 1 << 16))
        self._serve("POST")


def serve(*, port: int, name: str, fault_dir: Path | None) -> None:
    """Bind, log one start line to stderr, honour a crash-loop marker, serve until killed."""
    service = SampleService(name=name, fault_dir=fault_dir)
    try:
        server = _Server((HOST, port), _Handler)
    except OSError as exc:
        print(f"sample_service {name}: cannot bind {HOST}:{port}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    server.service = service
    bound = server.server_address[1]
    looping = service.crashloop_armed()
    note = f" crashloop marker present, exiting in {CRASH_DELAY}s" if looping else ""
    print(
        f"sample_service {name} started pid={os.getpid()} listening on {HOST}:{bound}{note}",
        file=sys.stderr,
        flush=True,
    )
    if looping:
        _exit_soon(CRASH_DELAY)
    with server:
        server.serve_forever(poll_interval=0.2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m paramedic.lab.sample_service")
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1 (0: any)")
    parser.add_argument("--name", required=True, help="instance name, as in the logs and metrics")
    parser.add_argument("--fault-dir", type=Path, help="where the crash-loop marker lives")
    args = parser.parse_args(argv)
    if not _NAME.fullmatch(args.name):
        parser.error(f"--name must match {_NAME.pattern} (it names the crash-loop marker file)")
    with contextlib.suppress(KeyboardInterrupt):
        serve(port=args.port, name=args.name, fault_dir=args.fault_dir)


if __name__ == "__main__":
    main()
