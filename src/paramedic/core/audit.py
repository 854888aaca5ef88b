"""The audit trail's hash chain and secret redaction, as pure functions.

Each entry's hash covers its own canonical content and the previous entry's hash, so editing or
deleting any entry breaks every hash after it; ``verify_chain`` names the first bad entry.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

GENESIS = "0" * 64
REDACTED = "[redacted]"
_SECRET_KEY = re.compile(
    r"(pass(word|wd)?|secret|token|api[_-]?key|authorization|cookie|credential|private[_-]?key)",
    re.IGNORECASE,
)
_SECRET_VALUES = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    (re.compile(r"(?i)(://[^/\s:@]+:)[^@\s/]+@"), r"\1" + REDACTED + "@"),
    (re.compile(r"(?i)\b(password|passwd|secret|token|api[_-]?key)=([^\s&]+)"), r"\1=" + REDACTED),
    (
        re.compile(r"\b(xox[abpr]-[A-Za-z0-9-]{10,}|gh[pousr]_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16})\b"),
        REDACTED,
    ),
]


def redact_text(text: str) -> str:
    for pattern, repl in _SECRET_VALUES:
        text = pattern.sub(repl, text)
    return text


def redact(value: Any) -> Any:
    """Redact secrets by key name and by value shape, anywhere in a JSON-like structure."""
    if isinstance(value, Mapping):
        return {
            str(k): (REDACTED if _SECRET_KEY.search(str(k)) and v not in (None, "") else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def canonical(
    *,
    seq: int,
    at: datetime,
    kind: str,
    actor: str,
    incident_id: int | None,
    run_id: int | None,
    data: Mapping[str, Any],
) -> str:
    """The exact text an entry's hash covers."""
    return json.dumps(
        {
            "seq": seq,
            "at": at.isoformat(),
            "kind": kind,
            "actor": actor,
            "incident_id": incident_id,
            "run_id": run_id,
            "data": data,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
        ensure_ascii=False,
    )


def chain_hash(prev_hash: str, body: str) -> str:
    return hashlib.sha256((prev_hash + "\n" + body).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredEntry:
    seq: int
    at: datetime
    kind: str
    actor: str
    incident_id: int | None
    run_id: int | None
    data: Mapping[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    checked: int
    first_bad: int | None = None
    problem: str = ""


def verify_chain(entries: Iterable[StoredEntry], *, head_seq: int | None, head_hash: str | None) -> ChainReport:
    """Walk entries in ``seq`` order; ``head_*`` is the separately stored tip of the chain."""
    prev, expected_seq, n = GENESIS, 1, 0
    for e in entries:
        n += 1
        if e.seq != expected_seq:
            return ChainReport(False, n, expected_seq, f"entry {expected_seq} is missing (next found is {e.seq})")
        if e.prev_hash != prev:
            return ChainReport(
                False,
                n,
                e.seq,
                f"entry {e.seq} does not follow entry {e.seq - 1}: the chain was cut or rewritten",
            )
        body = canonical(
            seq=e.seq,
            at=e.at,
            kind=e.kind,
            actor=e.actor,
            incident_id=e.incident_id,
            run_id=e.run_id,
            data=e.data,
        )
        if chain_hash(prev, body) != e.hash:
            return ChainReport(False, n, e.seq, f"entry {e.seq} was edited: its content no longer matches its hash")
        prev, expected_seq = e.hash, e.seq + 1
    last = expected_seq - 1
    if head_seq is not None and head_seq != last:
        return ChainReport(
            False,
            n,
            last + 1,
            f"entries after {last} were deleted (the chain's head is at {head_seq})",
        )
    if head_hash is not None and last and head_hash != prev:
        return ChainReport(False, n, last, f"entry {last} does not match the chain's recorded head")
    return ChainReport(True, n)
