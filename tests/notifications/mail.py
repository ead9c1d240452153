"""Reading the mail the tests' SMTP server (or the outbox folder) received, as a mail client would."""

from __future__ import annotations

import asyncio
import email
import email.policy
import mailbox
import re
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import EmailDelivery
from tests.support.servers import SmtpServer

_LINK = re.compile(r"https?://[^\s\"<>]+")


def parse(raw: bytes) -> EmailMessage:
    return cast(EmailMessage, email.message_from_bytes(raw, policy=email.policy.default))


def received(smtp: SmtpServer, to: str | None = None) -> list[EmailMessage]:
    """Every message in the server's Maildir (raw bytes as received), optionally only those to `to`."""
    if not smtp.maildir.exists():
        return []
    box = mailbox.Maildir(smtp.maildir, create=False)
    messages = [parse(box.get_bytes(key)) for key in box.iterkeys()]
    return [m for m in messages if to is None or to in str(m["To"])]


async def wait_for_mail(smtp: SmtpServer, to: str, count: int = 1, timeout: float = 30) -> list[EmailMessage]:
    async with asyncio.timeout(timeout):
        while len(found := received(smtp, to)) < count:
            await asyncio.sleep(0.05)
    return found


async def delivery_rows(sessions: async_sessionmaker[AsyncSession], narration_id: str) -> list[EmailDelivery]:
    async with sessions() as session:
        rows = await session.scalars(
            select(EmailDelivery).where(EmailDelivery.narration_id == uuid.UUID(narration_id))
        )
        return list(rows.all())


async def wait_for_delivery(
    sessions: async_sessionmaker[AsyncSession], narration_id: str, timeout: float = 30
) -> EmailDelivery:
    """The narration's one email_deliveries row once it is settled (not PENDING)."""
    async with asyncio.timeout(timeout):
        while True:
            rows = await delivery_rows(sessions, narration_id)
            if rows and rows[0].status != "PENDING":
                assert len(rows) == 1, rows
                return rows[0]
            await asyncio.sleep(0.05)


def parts(message: EmailMessage) -> tuple[str, str]:
    """(plain text, HTML) of a multipart/alternative message, decoded."""
    assert message.get_content_type() == "multipart/alternative"
    kinds = [p.get_content_type() for p in message.iter_parts()]
    assert kinds == ["text/plain", "text/html"], kinds
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and html is not None
    return str(plain.get_content()), str(html.get_content())


def links(text: str) -> list[str]:
    return [u.replace("&amp;", "&") for u in _LINK.findall(text)]


def check_headers(message: EmailMessage, *, to: str, subject: str, mail_from: str) -> str:
    """Check the headers every notification carries; returns the unsubscribe URL."""
    assert message["Subject"] == subject
    assert message["From"] == mail_from
    assert to in message["To"]
    assert re.fullmatch(r"<notify\.[0-9a-f-]{36}\.(READY|FAILED)\.\d+@talkative\.photo>", message["Message-ID"])
    assert message["Date"]
    unsubscribe = str(message["List-Unsubscribe"])
    # RFC 2369: the bare <URL>, not RFC 2047 encoded words (mail clients would not offer one-click then).
    match = re.fullmatch(r"<(https?://\S+/unsubscribe\?token=[\w.-]+)>", unsubscribe)
    assert match, unsubscribe
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    return match.group(1)


def one(items: list[Any]) -> Any:
    assert len(items) == 1, items
    return items[0]


def outbox_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.eml")) if folder.exists() else []
