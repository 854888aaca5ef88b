"""E-mail over SMTP (the standard library's ``smtplib``, in a worker thread).

Config::

    - {type: email, name: oncall-mail, host: smtp.example.com, port: 587, starttls: true,
       username: paramedic, password_env: SMTP_PASSWORD, from: "paramedic <paramedic@example.com>",
       to: [oncall@example.com], subject_prefix: "[paramedic]", events: [escalated, approval_needed, resolved]}

One message per event: ``multipart/alternative`` with the markdown summary as text and as HTML,
and the chart as an inline ``image/png`` (``Content-ID``) when there is one, so no public URL is
needed. ``Message-ID`` derives from the outbox dedup key (a receiver can drop a repeat), and
``References``/``In-Reply-To`` name the incident, so mail clients thread every event of an
incident together. ``ssl: true`` is SMTPS (port 465); ``starttls: true`` upgrades a plain
connection. SMTP 4xx answers and connection failures are retried, 5xx answers are permanent.
"""

from __future__ import annotations

import asyncio
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

from pydantic import BaseModel, ConfigDict, Field

from paramedic.core.errors import ActionError, PermanentError, RetryableError
from paramedic.notify.base import Notification, wants
from paramedic.notify.markdown import to_html, to_plain


class EmailConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    type: str = "email"
    name: str = "email"
    host: str = "localhost"
    port: int = 25
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    username: str = ""
    password: str = ""
    password_env: str = ""
    starttls: bool = False
    ssl: bool = False
    timeout: float = 10.0
    subject_prefix: str = "[paramedic]"
    domain: str = "paramedic.local"  # right-hand side of Message-ID
    events: tuple[str, ...] = ()


class EmailSink:
    """Sends one e-mail per event to a fixed list of recipients."""

    def __init__(self, cfg: EmailConfig, *, password: str) -> None:
        self.name = cfg.name
        self.cfg = cfg
        self._password = password

    def message(self, note: Notification) -> EmailMessage:
        cfg = self.cfg
        msg = EmailMessage()
        msg["Subject"] = " ".join(f"{cfg.subject_prefix} {note.title}".split())[:250]
        msg["From"] = cfg.sender
        msg["To"] = ", ".join(cfg.to)
        msg["Date"] = formatdate(usegmt=True)
        key = re.sub(r"[^A-Za-z0-9.-]", ".", f"{note.dedup_key}.{self.name}")
        msg["Message-ID"] = f"<{key}@{cfg.domain}>"
        if note.incident_id is not None:
            thread = f"<incident.{note.incident_id}@{cfg.domain}>"
            msg["References"] = thread
            msg["In-Reply-To"] = thread
        msg["X-Paramedic-Event"] = note.event
        msg.set_content(to_plain(note.summary_markdown))
        image = '<p><img src="cid:chart" alt="Metrics around the alert" width="1000"></p>' if note.image else ""
        msg.add_alternative(f"<html><body>{to_html(note.summary_markdown)}{image}</body></html>", subtype="html")
        if note.image:
            html_part = next(p for p in msg.iter_parts() if p.get_content_type() == "text/html")
            assert isinstance(html_part, EmailMessage)
            html_part.add_related(note.image, maintype="image", subtype="png", cid="<chart>", filename="chart.png")
        return msg

    async def send(self, note: Notification) -> None:
        if not wants(self.cfg.events, note.event):
            return
        await asyncio.to_thread(self._send, self.message(note))

    def _send(self, msg: EmailMessage) -> None:
        cfg = self.cfg
        where = f"SMTP server {cfg.host}:{cfg.port}"
        try:
            smtp = (
                smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout, context=ssl.create_default_context())
                if cfg.ssl
                else smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
            )
            with smtp:
                if cfg.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if cfg.username:
                    smtp.login(cfg.username, self._password)
                smtp.send_message(msg, from_addr=_address(cfg.sender), to_addrs=cfg.to)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise _by_code(min(codes) if codes else 550, f"{where} refused every recipient: {exc.recipients}") from None
        except smtplib.SMTPResponseException as exc:
            raise _by_code(exc.smtp_code, f"{where} answered {exc.smtp_code}: {exc.smtp_error!r}") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise PermanentError(f"{where}: {exc}", reason="refused") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise RetryableError(f"{where}: {type(exc).__name__}: {exc}", reason="unreachable") from None


def _by_code(code: int, message: str) -> ActionError:
    if 400 <= code < 500:
        return RetryableError(message, reason="unavailable")
    return PermanentError(message, reason="refused")


def _address(sender: str) -> str:
    match = re.search(r"<([^>]+)>", sender)
    return match.group(1) if match else sender.strip()
