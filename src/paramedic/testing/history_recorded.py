"""Alert history from a folder of recorded payloads (``paramedic record --out DIR``).

Each file is one delivery, exactly as a sender posted it; its name carries when it was received
(``20240501T120000Z-alertmanager-001.json``) and the source. The deliveries are replayed in that
order with the same rules as the ingest transaction (``core.incidents.decide``): a firing
delivery opens an episode unless one of its fingerprint is open, a repeat updates it, a
resolution closes it, a late one changes nothing. A file without a time in its name is taken as
received when its alerts say they started. A file that cannot be parsed is skipped with a warning.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from paramedic.core.alerts import Alert
from paramedic.core.errors import PayloadError
from paramedic.core.incidents import Delivery, decide
from paramedic.core.incidents import Episode as OpenEpisode
from paramedic.ingest import payloads
from paramedic.testing.history import Episode, History, HistoryError

_STAMP = re.compile(r"^(\d{8}T\d{6}(?:\.\d{1,6})?)Z")


def received_at(path: Path) -> datetime | None:
    """The receipt time in a recorded file's name, if it has one."""
    m = _STAMP.match(path.name)
    if m is None:
        return None
    text = m.group(1)
    fmt = "%Y%m%dT%H%M%S.%f" if "." in text else "%Y%m%dT%H%M%S"
    return datetime.strptime(text, fmt).replace(tzinfo=UTC)


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise HistoryError(f"{folder} is not a folder of recorded payloads (paramedic record --out DIR)")
    found = [p for p in folder.rglob("*.json") if p.is_file() and not p.name.startswith(".")]
    return sorted(found, key=lambda p: (received_at(p) or datetime.min.replace(tzinfo=UTC), p.name))


@dataclass
class _Open:
    episode: Episode
    index: int


def read(folder: Path) -> History:
    """Every episode the recorded deliveries in ``folder`` open, in the order they arrived."""
    episodes: list[Episode] = []
    warnings: list[str] = []
    open_by_key: dict[tuple[str, str], _Open] = {}
    seen_starts: set[tuple[str, str, datetime]] = set()
    for path in _files(folder):
        at = received_at(path)
        try:
            data = json.loads(path.read_text())
            alerts = payloads.parse(data, now=at or datetime.now(UTC), source=payloads.source_from_name(path))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, PayloadError) as exc:
            warnings.append(f"{path.name}: skipped, cannot be read as a payload: {exc}")
            continue
        for alert in alerts:
            _apply(alert, at or alert.starts_at, path.name, episodes, open_by_key, seen_starts)
    return History(episodes, warnings)


def _apply(
    alert: Alert,
    now: datetime,
    name: str,
    episodes: list[Episode],
    open_by_key: dict[tuple[str, str], _Open],
    seen_starts: set[tuple[str, str, datetime]],
) -> None:
    key = (alert.source, alert.fingerprint)
    current = open_by_key.get(key)
    opened = None if current is None else OpenEpisode(current.index, current.episode.starts_at, True)
    delivery = decide(
        alert,
        open_episode=opened,
        same_start_seen=current is None and (alert.source, alert.fingerprint, alert.starts_at) in seen_starts,
    )
    if delivery is Delivery.CREATED:
        ep = Episode(
            key=f"{alert.fingerprint}@{int(alert.starts_at.timestamp())}",
            source=alert.source,
            name=alert.name,
            labels=alert.labels,
            annotations=alert.annotations,
            fingerprint=alert.fingerprint,
            starts_at=alert.starts_at,
            seen_at=now,
        )
        seen_starts.add((alert.source, alert.fingerprint, alert.starts_at))
        open_by_key[key] = _Open(ep, len(episodes))
        episodes.append(ep)
    elif delivery is Delivery.RESOLVED and current is not None:
        ended = replace(current.episode, ends_at=alert.ends_at or now, ended_seen_at=now)
        episodes[current.index] = ended
        del open_by_key[key]
