"""``core.text.printable``: no control character survives, and visible text is kept as it is."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from paramedic.core.text import printable


@given(st.text())
def test_no_control_character_survives(value: str) -> None:
    shown = printable(value, newlines=False)
    assert not [c for c in shown if unicodedata.category(c) == "Cc"]
    assert not [c for c in shown if "\u202a" <= c <= "\u202e" or "\u2066" <= c <= "\u2069"]


@given(st.text(st.characters(blacklist_categories=("Cc", "Cf"))))
def test_visible_text_is_unchanged(value: str) -> None:
    assert printable(value) == value


def test_escapes_read_as_their_python_spelling() -> None:
    assert printable("a\x1b[2Jb\rc\u202ed") == "a\\x1b[2Jb\\x0dc\\u202ed"
    assert printable("one\ntwo\tthree") == "one\ntwo\tthree"
    assert printable("one\ntwo", newlines=False) == "one\\ntwo"
