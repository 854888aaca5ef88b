"""The audit trail's hash chain, its signed checkpoints and secret redaction, as pure functions.

Each entry's hash covers its own canonical content and the previous entry's hash, so editing or
deleting any entry breaks every hash after it; ``verify_chain`` names the first bad entry.

A writer of the database could recompute the whole chain after an edit, cut the tail and move the
head back, or wipe everything. Two things stop that (the threat model is ``docs/audit.md``):

- **A keyed chain.** With an ``AuditKey`` (kept outside the database), an entry's link is an
  HMAC-SHA256 over the previous hash and the entry's own leaf hash, so nobody without the key can
  write a link that verifies. Each entry names the key's id; entries written before a key was
  configured stay plain SHA-256 and are reported as unkeyed.
- **Signed checkpoints.** A ``Checkpoint`` is the head (sequence number and hash) with a MAC,
  written periodically outside the database (CloudTrail's digest files and Certificate
  Transparency's signed tree heads are the models). ``verify_chain`` checks the chain against the
  latest one, or against a head the auditor wrote down (``--expect-head``): a shorter, rewritten
  or empty chain no longer matches it.

The leaf hash of an entry depends on its content alone, and a checkpoint covers only the head, so
appends can later be sealed into the chain by one writer without a lock around every append.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

GENESIS = "0" * 64
REDACTED = "[redacted]"
# The names of secrets (not a secret).
_SECRET_WORDS = "|".join(
    [
        r"pass(?:word|wd)?",
        r"pwd",
        r"secret",
        r"token",
        r"api[_-]?key",
        r"access[_-]?key",
        r"client[_-]?secret",
        r"private[_-]?key",
        r"authorization",
        r"cookie",
        r"credential",
        r"(?<![A-Za-z])sig(?:nature)?(?![A-Za-z])",
        r"x-auth[\w-]*",
    ]
)
_SECRET_KEY = re.compile(rf"(?:{_SECRET_WORDS})", re.IGNORECASE)
_SECRET_FLAG = re.compile(r"(?i)^--?(?:password|passwd|pass|pwd|token|secret|api[_-]?key|auth[_-]?token|key)$")
_SECRET_VALUES = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    (re.compile(r"(?i)(://[^/\s:@]+:)[^@\s/]+@"), r"\1" + REDACTED + "@"),
    # query strings and flags: password=…, sig=… (signed URLs), --password=…
    (re.compile(rf"(?i)\b({_SECRET_WORDS})=([^\s&\"',;]+)"), r"\1=" + REDACTED),
    # "key: value" in text, headers and YAML: X-Auth-Token: …, password: …
    (re.compile(rf"(?i)\b({_SECRET_WORDS})([\"']?\s*:\s*[\"']?)(?!\[redacted\])([^\s\"',}}]+)"), r"\1\2" + REDACTED),
    # argv in one string: --password VALUE
    (re.compile(r"(?i)(\s--?(?:password|passwd|pass|pwd|token|secret|api[_-]?key)\s+)(?!-)(\S+)"), r"\1" + REDACTED),
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
    """Redact secrets by key name and by value shape, anywhere in a JSON-like structure; in a
    list (an argv), the value after a secret flag (``--password VALUE``) too."""
    if isinstance(value, Mapping):
        return {
            str(k): (REDACTED if _SECRET_KEY.search(str(k)) and v not in (None, "") else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        out: list[Any] = []
        after_flag = False
        for v in value:
            out.append(REDACTED if after_flag and isinstance(v, str) and v else redact(v))
            after_flag = isinstance(v, str) and _SECRET_FLAG.match(v) is not None
        return out
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


def leaf_hash(body: str) -> str:
    """The hash of one entry's canonical content, independent of every other entry."""
    return hashlib.sha256(body.encode()).hexdigest()


MIN_KEY_BYTES = 16


@dataclass(frozen=True, slots=True)
class AuditKey:
    """The secret that keys the chain and signs its checkpoints; never stored in the database."""

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_KEY_BYTES:
            raise ValueError(f"an audit key needs at least {MIN_KEY_BYTES} bytes, got {len(self.secret)}")

    @property
    def key_id(self) -> str:
        """A public name for the key (16 hex digits): tells which key wrote an entry."""
        return self._mac("paramedic-audit-key-id")[:16]

    def _mac(self, text: str) -> str:
        return hmac.new(self.secret, text.encode(), hashlib.sha256).hexdigest()


def chain_hash(prev_hash: str, body: str, key: AuditKey | None = None) -> str:
    """The link of an entry: plain SHA-256 without a key (entries written before one was set),
    HMAC-SHA256 over the previous link and the entry's leaf hash with one."""
    if key is None:
        return hashlib.sha256((prev_hash + "\n" + body).encode()).hexdigest()
    return key._mac("paramedic-audit-chain\n" + prev_hash + "\n" + leaf_hash(body))


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The head of the chain at ``at``, signed: ``seq`` entries, the last one's hash ``hash``."""

    seq: int
    hash: str
    at: datetime
    key_id: str
    mac: str

    def line(self) -> str:
        """One JSON line, as written to a checkpoint file or to syslog."""
        return json.dumps(
            {"seq": self.seq, "hash": self.hash, "at": self.at.isoformat(), "key_id": self.key_id, "mac": self.mac},
            sort_keys=True,
            separators=(",", ":"),
        )


def _checkpoint_text(*, seq: int, hash_: str, at: datetime, key_id: str) -> str:
    return f"paramedic-audit-checkpoint\n{seq}\n{hash_}\n{at.isoformat()}\n{key_id}"


def sign_checkpoint(key: AuditKey, *, seq: int, hash_: str, at: datetime) -> Checkpoint:
    if at.tzinfo is None:
        raise ValueError("a checkpoint's time must be timezone-aware")
    mac = key._mac(_checkpoint_text(seq=seq, hash_=hash_, at=at, key_id=key.key_id))
    return Checkpoint(seq=seq, hash=hash_, at=at, key_id=key.key_id, mac=mac)


def parse_checkpoint(line: str) -> Checkpoint:
    """Read one checkpoint line; ``ValueError`` says what is wrong with it."""
    try:
        raw = json.loads(line)
        cp = Checkpoint(
            seq=int(raw["seq"]),
            hash=str(raw["hash"]),
            at=datetime.fromisoformat(str(raw["at"])),
            key_id=str(raw["key_id"]),
            mac=str(raw["mac"]),
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a checkpoint line: {exc}") from None
    if cp.seq < 0 or cp.at.tzinfo is None:
        raise ValueError("not a checkpoint line: negative sequence or naive time")
    return cp


def checkpoint_signed_by(cp: Checkpoint, key: AuditKey) -> bool:
    expected = key._mac(_checkpoint_text(seq=cp.seq, hash_=cp.hash, at=cp.at, key_id=cp.key_id))
    return cp.key_id == key.key_id and hmac.compare_digest(expected, cp.mac)


@dataclass(frozen=True, slots=True)
class Anchor:
    """A head known from outside the database: a signed checkpoint, or one an auditor wrote down."""

    seq: int
    hash: str
    source: str  # "the checkpoint of 2026-01-01T00:00:00+00:00", "--expect-head"


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
    key_id: str | None = None


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    checked: int
    first_bad: int | None = None
    problem: str = ""
    head_seq: int = 0
    head_hash: str = GENESIS
    unkeyed: int = 0  # entries written without a key, which a database writer could rewrite
    warnings: tuple[str, ...] = ()


def verify_chain(
    entries: Iterable[StoredEntry],
    *,
    head_seq: int | None,
    head_hash: str | None,
    key: AuditKey | None = None,
    anchors: Iterable[Anchor] = (),
) -> ChainReport:
    """Walk entries in ``seq`` order against the stored head and the ``anchors`` known from outside.

    A missing head (``head_seq is None``) is a failure: the head row exists from the first
    migration on. Keyed entries need ``key``; an unkeyed entry after a keyed one is a failure (a
    rewrite by someone without the key). Every anchor must name an entry of the chain with exactly
    its hash.
    """
    by_seq = {a.seq: a for a in anchors}
    prev, expected_seq, n, unkeyed, keyed_seen = GENESIS, 1, 0, 0, False

    def bad(at: int, problem: str) -> ChainReport:
        return ChainReport(False, n, at, problem, unkeyed=unkeyed)

    for e in entries:
        n += 1
        if e.seq != expected_seq:
            return bad(expected_seq, f"entry {expected_seq} is missing (next found is {e.seq})")
        if e.prev_hash != prev:
            return bad(e.seq, f"entry {e.seq} does not follow entry {e.seq - 1}: the chain was cut or rewritten")
        body = canonical(
            seq=e.seq,
            at=e.at,
            kind=e.kind,
            actor=e.actor,
            incident_id=e.incident_id,
            run_id=e.run_id,
            data=e.data,
        )
        if e.key_id is None:
            if keyed_seen:
                return bad(e.seq, f"entry {e.seq} is not keyed although earlier entries are: it was rewritten")
            unkeyed += 1
            link = chain_hash(prev, body)
        elif key is None:
            return bad(
                e.seq,
                f"entry {e.seq} is keyed (key {e.key_id}) and no key was given:"
                " configure audit.key_file or audit.key_env, or pass --key-file",
            )
        elif e.key_id != key.key_id:
            return bad(e.seq, f"entry {e.seq} was written with key {e.key_id}, not with the key given ({key.key_id})")
        else:
            keyed_seen = True
            link = chain_hash(prev, body, key)
        if not hmac.compare_digest(link, e.hash):
            return bad(e.seq, f"entry {e.seq} was edited: its content no longer matches its hash")
        anchor = by_seq.get(e.seq)
        if anchor is not None and anchor.hash != e.hash:
            return bad(e.seq, f"entry {e.seq} does not match {anchor.source}: the chain was rewritten")
        prev, expected_seq = e.hash, e.seq + 1
    last = expected_seq - 1
    if head_seq is None:
        return bad(last + 1, "the chain's head row is missing: the trail was wiped or its head deleted")
    if head_seq != last:
        return bad(last + 1, f"entries after {last} were deleted (the chain's head is at {head_seq})")
    if head_hash is not None and last and head_hash != prev:
        return bad(last, f"entry {last} does not match the chain's recorded head")
    for anchor in sorted(by_seq.values(), key=lambda a: a.seq):
        if anchor.seq > last:
            return bad(
                last + 1,
                f"entries after {last} were deleted or wiped: {anchor.source} records the head at entry {anchor.seq}",
            )
        if anchor.seq == 0 and anchor.hash != GENESIS:
            return bad(0, f"{anchor.source} is not a head of this chain")
    warnings = []
    if not by_seq:
        warnings.append("checked without a checkpoint or --expect-head: a cut tail or a wiped trail would not be found")
    covered = max(by_seq, default=0)
    if unkeyed > covered:
        warnings.append(
            f"{unkeyed - covered} entries are unkeyed and after the last checkpoint:"
            " a database writer could rewrite them unnoticed (set audit.key_file)"
        )
    return ChainReport(True, n, head_seq=last, head_hash=prev, unkeyed=unkeyed, warnings=tuple(warnings))
