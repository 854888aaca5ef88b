"""Optional sampling profile of the paramedic server during each load (``--profile DIR``).

Uses ``py-spy`` (``pip install py-spy``) attached to the server's pid, and sums its collapsed
stacks into the functions where the server spends its time (inclusive share of samples).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path


class Sampler:
    """``py-spy record`` on one pid until ``stop()``; then ``top()`` reads the result."""

    def __init__(self, pid: int, out: Path, *, rate: int = 200) -> None:
        spy = shutil.which("py-spy")
        if spy is None:
            raise RuntimeError("--profile needs py-spy on PATH (pip install py-spy)")
        self.out = out
        self.log = out.with_suffix(".log").open("wb")
        self.proc = subprocess.Popen(
            [spy, "record", "--pid", str(pid), "--rate", str(rate), "--gil", "--format", "raw", "--output", str(out)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()

    def top(self, n: int = 25) -> list[tuple[str, float, float]]:
        """The ``n`` paramedic functions found in the most samples: (function, inclusive share,
        share where it is the innermost paramedic frame, i.e. its own code plus the libraries it
        calls directly, such as SQLAlchemy)."""
        if not self.out.exists():
            return []
        inclusive: Counter[str] = Counter()
        innermost: Counter[str] = Counter()
        total = 0
        for line in self.out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            samples = int(count)
            total += samples
            ours = [_function(f) for f in stack.split(";") if "paramedic/" in f and "site-packages" not in f]
            for name in set(ours):
                inclusive[name] += samples
            innermost[ours[-1] if ours else "(outside paramedic: event loop, uvicorn, threads)"] += samples
        if not total:
            return []
        return [(name, inclusive[name] / total, hits / total) for name, hits in innermost.most_common(n)]


def _function(frame: str) -> str:
    """``name (path/to/file.py:12)`` → ``name (store/audit.py)``."""
    name, _, where = frame.partition(" (")
    path = where.rpartition(":")[0]
    return f"{name} ({path.split('paramedic/', 1)[-1]})"
