"""``python -m bench.peer [--quick]``: paramedic vs ansible-rulebook (Event-Driven Ansible), side by side.

Same machine, same run, same Alertmanager webhook bodies (one firing alert per webhook, each alert
with its own ``instance`` and fingerprint), same action: an HTTP POST to a loopback receiver
(``bench.receiver``) that stamps the arrival.

* paramedic: ``paramedic serve`` on SQLite (``bench.stack``), a runbook whose step is ``http.request``.
* ansible-rulebook: a rulebook with the ``eda.builtin.webhook`` source, the condition
  ``event.payload.status == "firing"`` and the action ``run_module: ansible.builtin.uri`` against a
  localhost inventory (``ansible_connection: local``). It runs from its own venv (``--eda-venv``,
  default ``/tmp/eda-venv``), because it needs Java 17 (drools_jpy) and ansible-core.

Two loads per system: latency (alert sent → action arrived at the receiver) at a modest open-loop
rate, and throughput (N webhooks sent as fast as they are accepted; actions completed per second
until all are done or a time cap). Every load is bounded and loopback only; every child process
(and its process group) is stopped at the end. The full run writes its tables between its own
markers at the end of ``docs/benchmarks.md``; ``--quick`` only prints.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.loads import JSON, am_alert, am_webhook, percentile
from bench.run import machine
from bench.stack import LATENCY_ALERT, REPO, Child, Stack, free_port

DOC = REPO / "docs" / "benchmarks.md"
BEGIN = "<!-- bench:peer:begin (written by `python -m bench.peer`; edit outside these markers) -->"
END = "<!-- bench:peer:end -->"
AIM_RATIO = 50.0
DEFAULT_JAVA_HOME = "/usr/lib/jvm/java-17-openjdk-amd64"


@dataclass(frozen=True)
class Sizes:
    rate: float  # latency load, alerts/s
    seconds: float
    paramedic_n: int  # throughput load, alerts
    eda_n: int
    concurrency: int
    paramedic_cap: float  # seconds, throughput time caps
    eda_cap: float


FULL = Sizes(2.0, 15.0, 1000, 300, 16, 60.0, 60.0)
QUICK = Sizes(2.0, 5.0, 300, 40, 16, 20.0, 30.0)


@dataclass(frozen=True)
class Latency:
    sent: int
    accepted: int
    executed: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True)
class Throughput:
    sent: int
    accepted: int
    executed: int
    send_s: float  # first send → last webhook answered
    done_s: float  # first send → last action arrived (or the cap)
    capped: bool

    @property
    def accepted_per_s(self) -> float:
        return self.accepted / self.send_s if self.send_s > 0 else 0.0

    @property
    def actions_per_s(self) -> float:
        return self.executed / self.done_s if self.done_s > 0 else 0.0


def bodies(prefix: str, count: int) -> list[tuple[str, bytes]]:
    # Alertmanager 0.25 webhook shape (tests/fixtures/alertmanager-0.25-firing.json), one alert each.
    return [
        (f"{prefix}-{i}", am_webhook(LATENCY_ALERT, [am_alert(LATENCY_ALERT, f"{prefix}-{i}")])) for i in range(count)
    ]


async def wait_actions(
    client: httpx.AsyncClient, receiver: str, keys: dict[str, int], want: int, deadline: float, idle: float
) -> dict[str, int]:
    """Poll the receiver until ``want`` of ``keys`` arrived, nothing new came for ``idle`` s, or ``deadline``."""
    arrivals: dict[str, int] = {}
    progress_at = time.monotonic()
    while time.monotonic() < min(deadline, progress_at + idle):
        data = (await client.get(f"{receiver}/hits")).json()
        got = {k: v for k, v in data["arrivals"].items() if k in keys}
        if len(got) > len(arrivals):
            progress_at = time.monotonic()
        arrivals = got
        if len(arrivals) >= want:
            break
        await asyncio.sleep(0.1)
    return arrivals


async def latency(webhook: str, receiver: str, ok: int, prefix: str, rate: float, seconds: float) -> Latency:
    """Open loop: one single-alert webhook every ``1/rate`` s; latency = receiver arrival − send time."""
    load = bodies(prefix, int(rate * seconds))
    sent_at: dict[str, int] = {}
    accepted = 0
    async with httpx.AsyncClient(timeout=30) as client:
        begin = time.monotonic() + 0.2

        async def one(i: int) -> None:
            nonlocal accepted
            key, body = load[i]
            await asyncio.sleep(max(0.0, begin + i / rate - time.monotonic()))
            sent_at[key] = time.monotonic_ns()
            with contextlib.suppress(httpx.HTTPError):
                if (await client.post(webhook, content=body, headers=JSON)).status_code == ok:
                    accepted += 1

        await asyncio.gather(*(one(i) for i in range(len(load))))
        arrivals = await wait_actions(client, receiver, sent_at, accepted, time.monotonic() + 120, 20)
    lat = [(arrivals[k] - sent_at[k]) / 1e6 for k in arrivals]
    return Latency(
        len(load), accepted, len(lat), percentile(lat, 50), percentile(lat, 99), max(lat, default=float("nan"))
    )


async def throughput(
    webhook: str, receiver: str, ok: int, prefix: str, count: int, concurrency: int, cap: float
) -> Throughput:
    """Closed loop: ``concurrency`` clients send ``count`` single-alert webhooks back to back, while
    the receiver is polled; the run ends when every accepted alert's action arrived, or ``cap``
    seconds after the first send (then sending stops too), whichever comes first."""
    load = bodies(prefix, count)
    keys = {k: 0 for k, _ in load}
    accepted = 0
    next_body = 0
    send_s = cap
    limits = httpx.Limits(max_connections=concurrency + 1, max_keepalive_connections=concurrency + 1)
    async with httpx.AsyncClient(timeout=cap, limits=limits) as client:
        begin_ns = time.monotonic_ns()
        begin = time.monotonic()
        stop_at = begin + cap

        async def client_loop() -> None:
            nonlocal next_body, accepted
            while next_body < len(load) and time.monotonic() < stop_at:
                _, body = load[next_body]
                next_body += 1
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.post(webhook, content=body, headers=JSON)).status_code == ok:
                        accepted += 1

        async def senders() -> None:
            nonlocal send_s
            await asyncio.gather(*(client_loop() for _ in range(concurrency)))
            send_s = time.monotonic() - begin

        sending = asyncio.create_task(senders())
        arrivals: dict[str, int] = {}
        while time.monotonic() < stop_at:
            data = (await client.get(f"{receiver}/hits")).json()
            arrivals = {k: v for k, v in data["arrivals"].items() if k in keys}
            if sending.done() and len(arrivals) >= accepted:
                break
            await asyncio.sleep(0.1)
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sending
    arrivals = {k: v for k, v in arrivals.items() if v - begin_ns <= cap * 1e9}
    capped = len(arrivals) < accepted or next_body < count
    last = max(arrivals.values(), default=begin_ns)
    done_s = cap if capped else (last - begin_ns) / 1e9
    return Throughput(next_body, accepted, len(arrivals), min(send_s, cap), done_s, capped)


# --- ansible-rulebook -------------------------------------------------------------------------


def rulebook_yaml(port: int, receiver: str) -> str:
    return textwrap.dedent(
        f"""\
        - name: paramedic-peer
          hosts: all
          sources:
            - eda.builtin.webhook:
                host: 127.0.0.1
                port: {port}
          rules:
            - name: alertmanager firing
              condition: event.payload.status == "firing"
              action:
                run_module:
                  name: ansible.builtin.uri
                  module_args:
                    url: {receiver}/hit
                    method: POST
                    body_format: json
                    body:
                      id: "{{{{ event.payload.alerts[0].labels.instance }}}}"
                    status_code: 200
        """
    )


def inventory_yaml(python: Path) -> str:
    return textwrap.dedent(
        f"""\
        all:
          hosts:
            localhost:
              ansible_connection: local
              ansible_python_interpreter: {python}
        """
    )


class Rulebook:
    """``ansible-rulebook`` in its own process group (it forks ansible-runner / ansible-playbook);
    the whole group is stopped on exit."""

    def __init__(self, venv: Path, workdir: Path, receiver: str) -> None:
        self.port = free_port()
        self.webhook = f"http://127.0.0.1:{self.port}/endpoint"
        (workdir / "rulebook.yml").write_text(rulebook_yaml(self.port, receiver))
        (workdir / "inventory.yml").write_text(inventory_yaml(venv / "bin" / "python"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "ANSIBLE_"))}
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["JAVA_HOME"] = java_home()
        env["ANSIBLE_HOME"] = str(workdir / "ansible-home")
        env["ANSIBLE_LOCAL_TEMP"] = str(workdir / "ansible-tmp")
        env["TMPDIR"] = str(workdir)  # ansible-runner's private data dirs, removed with the workdir
        self.logpath = workdir / "ansible-rulebook.log"
        self.log = self.logpath.open("wb")
        self.proc = subprocess.Popen(
            [str(venv / "bin" / "ansible-rulebook"), "-r", "rulebook.yml", "-i", "inventory.yml"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
            start_new_session=True,
        )
        self.pgid = self.proc.pid
        deadline = time.monotonic() + 90
        while not self._listening():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"ansible-rulebook did not start:\n{self.logpath.read_text()[-3000:]}")
            time.sleep(0.2)
        time.sleep(1.0)  # the rule engine starts with the source; let it settle

    def _listening(self) -> bool:
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        """Stop ansible-rulebook and every process under it. ansible-runner starts ansible-playbook in
        sessions of its own (pexpect), so the process group is not enough: freeze the whole tree
        (SIGSTOP, so nothing forks any more), then SIGKILL every process in it, by pid."""
        root = self.proc.pid
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(root, signal.SIGSTOP)
            tree: set[int] = set()
            for _ in range(5):
                found = descendants(root) - tree
                if not found:
                    break
                for pid in found:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGSTOP)
                tree |= found
            for pid in (*tree, root):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self.log.close()

    def __enter__(self) -> Rulebook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def descendants(root: int) -> set[int]:
    """Every living process under ``root`` (from /proc, Linux)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def java_home() -> str:
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    if Path(DEFAULT_JAVA_HOME).is_dir():
        return DEFAULT_JAVA_HOME
    java = shutil.which("java")
    return str(Path(java).resolve().parents[1]) if java else ""


def version(argv: list[str], env: dict[str, str] | None = None) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    except (OSError, subprocess.SubprocessError) as e:
        return f"unavailable ({e})"
    out = (r.stdout + r.stderr).strip().splitlines()
    return out[0].strip() if out else "unknown"


def eda_versions(venv: Path) -> dict[str, str]:
    jh = java_home()
    java = str(Path(jh) / "bin" / "java") if jh else "java"
    py = str(venv / "bin" / "python")
    pkgs = version(
        [
            py,
            "-c",
            "import importlib.metadata as m; print(', '.join(f'{p} {m.version(p)}' for p in "
            "('ansible-rulebook', 'ansible-core', 'ansible-runner', 'drools_jpy', 'jpy')))",
        ]
    )
    return {
        "Java (ansible-rulebook)": version([java, "-version"]),
        "EDA venv": f"{venv} ({version([py, '-V'])})",
        "EDA packages": pkgs,
    }


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Results:
    lat: dict[str, Latency]
    thr: dict[str, Throughput]
    eda_error: str = ""


async def paramedic_loads(sizes: Sizes, tmp: Path, workers: int) -> tuple[Latency, Throughput]:
    (tmp / "paramedic").mkdir()
    with Stack(tmp / "paramedic", workers=workers) as stack:
        lat = await latency(stack.webhook, stack.receiver_url, 202, "pm-lat", sizes.rate, sizes.seconds)
        thr = await throughput(
            stack.webhook, stack.receiver_url, 202, "pm-thr", sizes.paramedic_n, sizes.concurrency, sizes.paramedic_cap
        )
    return lat, thr


async def eda_loads(sizes: Sizes, tmp: Path, venv: Path) -> tuple[Latency, Throughput]:
    work = tmp / "eda"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARAMEDIC_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    rport = free_port()
    receiver_url = f"http://127.0.0.1:{rport}"
    receiver = Child(
        [sys.executable, "-m", "bench.receiver", "--port", str(rport)],
        ready_url=f"{receiver_url}/hits",
        log=work / "receiver.log",
        env=env,
        cwd=REPO,
    )
    try:
        with Rulebook(venv, work, receiver_url) as rb:
            lat = await latency(rb.webhook, receiver_url, 200, "eda-lat", sizes.rate, sizes.seconds)
            thr = await throughput(
                rb.webhook, receiver_url, 200, "eda-thr", sizes.eda_n, sizes.concurrency, sizes.eda_cap
            )
    finally:
        receiver.stop()
    return lat, thr


def ms(v: float) -> str:
    if math.isnan(v):
        return "–"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def ratio(a: float, b: float) -> float:
    return a / b if b > 0 and not math.isnan(a) else float("nan")


def render(res: Results, sizes: Sizes, info: dict[str, str], *, quick: bool, when: datetime, venv: Path) -> str:
    lines = [
        BEGIN,
        "",
        "## Paramedic vs ansible-rulebook",
        "",
        f"Measured {when:%Y-%m-%d %H:%M} UTC{' (quick run)' if quick else ''}, both systems on this machine in one "
        "run, one after the other (never at the same time), with the same Alertmanager v4 webhook bodies "
        "(the shape of `tests/fixtures/alertmanager-0.25-firing.json`, one firing alert per webhook, each "
        "alert with its own `instance` and fingerprint) and the same action: an HTTP POST to a loopback "
        "receiver (`bench/receiver.py`) that stamps its arrival.",
        "",
        "- **paramedic**: `paramedic serve` on SQLite, a runbook (`mode: auto`) whose one step is "
        "`http.request` POST to the receiver (`bench/stack.py`).",
        "- **ansible-rulebook**: source `eda.builtin.webhook` on 127.0.0.1, condition "
        '`event.payload.status == "firing"`, action `run_module` `ansible.builtin.uri` '
        "(POST, `status_code: 200`) on a localhost inventory with `ansible_connection: local` "
        "(default settings: `max_concurrent_actions=25`).",
        "",
        f"Latency: open loop, {sizes.rate:g} alerts/s for {sizes.seconds:g} s, latency = receiver arrival − webhook "
        f"send time. Throughput: {sizes.concurrency} clients send N webhooks back to back; actions/s = actions "
        "arrived at the receiver ÷ (first send → last action), or ÷ the cap when the cap ends the run.",
        "",
    ]
    if res.eda_error:
        lines += ["**ansible-rulebook could not run here:**", "", "```text", res.eda_error.strip()[-3000:], "```", ""]
    lines += [
        "| system | latency: sent / run | p50 ms | p99 ms | max ms | throughput: N / accepted / run "
        "| webhooks accepted/s | actions/s | time to last action s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, key in (("paramedic", "pm"), ("ansible-rulebook", "eda")):
        la, th = res.lat.get(key), res.thr.get(key)
        if la is None or th is None:
            lines.append(f"| {name} | not run | | | | | | | |")
            continue
        lines.append(
            f"| {name} | {la.sent} / {la.executed} | {ms(la.p50_ms)} | {ms(la.p99_ms)} | {ms(la.max_ms)} "
            f"| {th.sent} / {th.accepted} / {th.executed} | {th.accepted_per_s:,.0f} | {th.actions_per_s:,.1f} "
            f"| {th.done_s:.1f}{' (cap)' if th.capped else ''} |"
        )
    lines.append("")
    if "pm" in res.lat and "eda" in res.lat:
        p99 = ratio(res.lat["eda"].p99_ms, res.lat["pm"].p99_ms)
        p50 = ratio(res.lat["eda"].p50_ms, res.lat["pm"].p50_ms)
        thr = ratio(res.thr["pm"].actions_per_s, res.thr["eda"].actions_per_s)
        lines += [
            f"Against the issue's target (paramedic p99 ≥ {AIM_RATIO:g}× lower, throughput ≥ {AIM_RATIO:g}× higher):",
            "",
            f"- p99 latency: ansible-rulebook / paramedic = **{p99:,.0f}×** "
            f"(p50 {p50:,.0f}×) — {'met' if p99 >= AIM_RATIO else 'NOT met'}",
            f"- throughput (actions/s): paramedic / ansible-rulebook = **{thr:,.0f}×** — "
            f"{'met' if thr >= AIM_RATIO else 'NOT met'}",
            "",
            "ansible-rulebook runs every `run_module` action as an `ansible-playbook` process (through "
            "ansible-runner), which costs about a second of CPU; on this machine it cannot keep up with even "
            f"{sizes.rate:g} alerts/s, so its latency figures include the queue that grows during the load "
            "(that is what an operator would see at that alert rate). Its throughput is bounded by the same cost. "
            "paramedic's throughput here is for this N and these clients, not its ceiling (see the tables above).",
            "",
        ]
    lines += [
        "| machine | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in info.items()],
        "",
        "Rerun with:",
        "",
        "```sh",
        f"python3 -m venv {venv} && {venv}/bin/pip install ansible-rulebook ansible-core   # Event-Driven Ansible",
        f"export JAVA_HOME={DEFAULT_JAVA_HOME}   # Java 17, for drools_jpy",
        ".venv/bin/python -m bench.peer            # writes this section",
        ".venv/bin/python -m bench.peer --quick    # short smoke run, prints only",
        "```",
        "",
        "(`pip install -e '.[peer]'` installs the same two packages, for a venv of their own.)",
        "",
        END,
    ]
    return "\n".join(lines) + "\n"


def update_doc(path: Path, block: str) -> None:
    text = path.read_text()  # re-read right before writing: only this block changes
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        text = head + block.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run; prints only unless --write")
    parser.add_argument("--write", dest="write", action="store_true", default=None, help="write docs/benchmarks.md")
    parser.add_argument("--no-write", dest="write", action="store_false", help="print only")
    parser.add_argument("--output", type=Path, default=DOC)
    parser.add_argument("--eda-venv", type=Path, default=Path("/tmp/eda-venv"), help="venv with ansible-rulebook")
    parser.add_argument("--workers", type=int, default=4, help="paramedic workers")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    write = (not args.quick) if args.write is None else args.write
    info = machine()
    info.update(eda_versions(args.eda_venv))
    when = datetime.now(UTC)
    res = Results({}, {})
    with tempfile.TemporaryDirectory(prefix="paramedic-peer-") as t:
        tmp = Path(t)
        print("paramedic …", flush=True)
        res.lat["pm"], res.thr["pm"] = asyncio.run(paramedic_loads(sizes, tmp, args.workers))
        print(f"  {res.lat['pm']}\n  {res.thr['pm']}", flush=True)
        print("ansible-rulebook …", flush=True)
        if not (args.eda_venv / "bin" / "ansible-rulebook").exists():
            res.eda_error = f"{args.eda_venv}/bin/ansible-rulebook not found (create the venv, see below)"
        else:
            try:
                res.lat["eda"], res.thr["eda"] = asyncio.run(eda_loads(sizes, tmp, args.eda_venv))
                print(f"  {res.lat['eda']}\n  {res.thr['eda']}", flush=True)
            except RuntimeError as e:
                res.eda_error = str(e)
    block = render(res, sizes, info, quick=args.quick, when=when, venv=args.eda_venv)
    print(block)
    if write:
        update_doc(args.output, block)
        print(f"results written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
