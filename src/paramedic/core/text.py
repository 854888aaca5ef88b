"""Untrusted text made safe to show on a terminal: control characters become visible escapes.

Alert labels and annotations come from systems paramedic does not control. Printed as they are, an
ANSI escape sequence in a label could recolour, hide or rewrite what an on-call engineer reads
(``\\x1b[2J`` clears the screen, ``\\r`` overwrites a line). ``printable`` keeps every visible
character and shows each control character as its Python escape, so the text reads as data.
Markup escaping (rich's ``[bold]``) is the renderer's job; this module knows no renderer.
"""

from __future__ import annotations

import re

# C0 controls except tab and newline, DEL, the C1 range, and the bidi overrides and isolates that
# reorder what a terminal shows (the "Trojan Source" characters)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _visible(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object, *, newlines: bool = True) -> str:
    """``value`` as text with control characters shown as escapes (``\\x1b``); with
    ``newlines=False`` a newline or tab is shown as ``\\n``/``\\t`` too (one table cell, one line)."""
    text = _CONTROL.sub(_visible, str(value))
    if not newlines:
        text = text.replace("\n", "\\n").replace("\t", "\\t")
    return text
