"""The summary's markdown in each sink's own dialect: Slack mrkdwn, HTML (e-mail), Jira wiki.

The summary (``engine.summary``) uses a small subset of markdown: paragraphs, ``**bold**``,
``_italic_``, inline code, fenced code blocks, ``- `` bullets with indented numbered sub-items,
``> `` quotes, ``<https://…>`` autolinks, ``[text](https://…)`` links and backslash escapes.
These converters handle exactly that subset, and escape everything else for the target format,
so that untrusted alert text can never become a Slack ``<!channel>`` mention, HTML or a Jira macro.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass

_INLINE = re.compile(
    r"(?P<code>`[^`]*`)"
    r"|(?P<esc>\\[\\`*_\[\]<>#|{}])"
    r"|\*\*(?P<bold>.+?)\*\*"
    r"|<(?P<auto>https?://[^>\s]+)>"
    r"|\[(?P<ltext>[^\]]+)\]\((?P<lurl>https?://[^)\s]+)\)"
    r"|(?<![\w\\])_(?P<ital>[^_]+?)_(?!\w)"
)
_ITEM = re.compile(r"^(?P<indent> *)(?:(?P<bullet>[-*])|(?P<num>\d+)\.) (?P<text>.*)$")


@dataclass(frozen=True)
class _Dialect:
    text: Callable[[str], str]
    code: Callable[[str], str]
    bold: Callable[[str], str]
    italic: Callable[[str], str]
    link: Callable[[str, str], str]


def _inline(text: str, d: _Dialect) -> str:
    out, pos = [], 0
    for m in _INLINE.finditer(text):
        out.append(d.text(text[pos : m.start()]))
        pos = m.end()
        if m.group("code") is not None:
            out.append(d.code(m.group("code")[1:-1]))
        elif m.group("esc") is not None:
            out.append(d.text(m.group("esc")[1]))
        elif m.group("bold") is not None:
            out.append(d.bold(_inline(m.group("bold"), d)))
        elif m.group("auto") is not None:
            out.append(d.link(m.group("auto"), d.text(m.group("auto"))))
        elif m.group("lurl") is not None:
            out.append(d.link(m.group("lurl"), _inline(m.group("ltext"), d)))
        else:
            out.append(d.italic(_inline(m.group("ital"), d)))
    out.append(d.text(text[pos:]))
    return "".join(out)


def _blocks(md: str) -> list[tuple[str, list[str]]]:
    """Split into ("code", lines) and ("text", lines) blocks; fences may be longer than three."""
    blocks: list[tuple[str, list[str]]] = []
    lines = md.split("\n")
    i = 0
    while i < len(lines):
        fence = re.match(r"^(`{3,})", lines[i])
        if fence:
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == fence.group(1)), len(lines))
            blocks.append(("code", lines[i + 1 : end]))
            i = end + 1
            continue
        if blocks and blocks[-1][0] == "text":
            blocks[-1][1].append(lines[i])
        else:
            blocks.append(("text", [lines[i]]))
        i += 1
    return blocks


# ---- Slack -----------------------------------------------------------------------------------
def slack_escape(text: str) -> str:
    # Slack's only escapes: these three (https://api.slack.com/reference/surfaces/formatting#escaping)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_SLACK = _Dialect(
    text=slack_escape,
    code=lambda s: "`" + slack_escape(s) + "`",
    bold=lambda s: f"*{s}*",
    italic=lambda s: f"_{s}_",
    link=lambda url, text: f"<{url.replace('|', '%7C')}|{text}>",
)


def to_slack(md: str) -> str:
    """Slack mrkdwn."""
    out = []
    for kind, lines in _blocks(md):
        if kind == "code":
            out.append("```\n" + slack_escape("\n".join(lines)) + "\n```")
            continue
        for line in lines:
            heading = re.match(r"^#{1,6} (.*)$", line)
            item = _ITEM.match(line)
            if heading:
                out.append(f"*{_inline(heading.group(1), _SLACK)}*")
            elif line.startswith("> "):
                out.append("> " + _inline(line[2:], _SLACK))
            elif item and item.group("bullet"):
                out.append(item.group("indent") + "• " + _inline(item.group("text"), _SLACK))
            else:
                out.append(_inline(line, _SLACK))
    return "\n".join(out)


# ---- HTML ------------------------------------------------------------------------------------
_HTML = _Dialect(
    text=lambda s: html.escape(s, quote=False),
    code=lambda s: f"<code>{html.escape(s, quote=False)}</code>",
    bold=lambda s: f"<strong>{s}</strong>",
    italic=lambda s: f"<em>{s}</em>",
    link=lambda url, text: f'<a href="{html.escape(url, quote=True)}">{text}</a>',
)


def to_html(md: str) -> str:
    """A self-contained HTML fragment (for the e-mail's HTML part)."""
    out: list[str] = []
    for kind, lines in _blocks(md):
        if kind == "code":
            body = html.escape("\n".join(lines), quote=False)
            out.append(f'<pre style="background:#f6f8fa;padding:8px;overflow:auto">{body}</pre>')
            continue
        para: list[str] = []

        def flush(para: list[str] = para) -> None:
            if para:
                out.append("<p>" + "<br>\n".join(para) + "</p>")
                para.clear()

        for line in lines:
            item = _ITEM.match(line)
            heading = re.match(r"^#{1,6} (.*)$", line)
            if not line.strip():
                flush()
            elif heading:
                flush()
                out.append(f"<h3>{_inline(heading.group(1), _HTML)}</h3>")
            elif line.startswith("> "):
                flush()
                quote = _inline(line[2:], _HTML)
                out.append(
                    f'<blockquote style="border-left:3px solid #ccc;margin:0;padding-left:8px">{quote}</blockquote>'
                )
            elif item:
                flush()
                mark = "•" if item.group("bullet") else f"{item.group('num')}."
                margin = 8 * len(item.group("indent"))
                out.append(f'<div style="margin-left:{margin}px">{mark} {_inline(item.group("text"), _HTML)}</div>')
            elif line.startswith("  "):
                flush()
                margin = 8 * (len(line) - len(line.lstrip()))
                out.append(f'<div style="margin-left:{margin}px">{_inline(line.strip(), _HTML)}</div>')
            else:
                para.append(_inline(line, _HTML))
        flush()
    return "\n".join(out)


# ---- Jira wiki markup --------------------------------------------------------------------------
def _jira_escape(text: str) -> str:
    # the characters that start Jira markup mid-line (lines never start with untrusted text)
    return re.sub(r"([*_{}\[\]|^~+!])", r"\\\1", text).replace("??", "\\?\\?")


_JIRA = _Dialect(
    text=_jira_escape,
    code=lambda s: "{{" + _jira_escape(s) + "}}",
    bold=lambda s: f"*{s}*",
    italic=lambda s: f"_{s}_",
    link=lambda url, text: f"[{text}|{url.replace('|', '%7C').replace(']', '%5D')}]",
)


def to_jira(md: str) -> str:
    """Jira wiki markup (the ``description`` and comment ``body`` of REST API v2)."""
    out = []
    for kind, lines in _blocks(md):
        if kind == "code":
            out.append("{noformat}\n" + "\n".join(lines).replace("{noformat}", "{ noformat}") + "\n{noformat}")
            continue
        for line in lines:
            item = _ITEM.match(line)
            heading = re.match(r"^(#{1,6}) (.*)$", line)
            if heading:
                out.append(f"h{len(heading.group(1))}. {_inline(heading.group(2), _JIRA)}")
            elif line.startswith("> "):
                out.append("bq. " + _inline(line[2:], _JIRA))
            elif item:
                depth = 1 + min(2, len(item.group("indent")) // 2)
                out.append("*" * depth + " " + _inline(item.group("text"), _JIRA))
            elif line.startswith("  ") and line.strip():
                out.append("*** " + _inline(line.strip(), _JIRA))
            else:
                out.append(_inline(line, _JIRA))
    return "\n".join(out)


def to_plain(md: str) -> str:
    """Plain text: the markdown with its escapes removed (markdown reads well as text)."""
    return re.sub(r"\\([\\`*_\[\]<>#|{}])", r"\1", md)
