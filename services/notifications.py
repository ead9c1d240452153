"""Email notifications: preferences, the unsubscribe link, and sending one email per finished narration."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from email.headerregistry import BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import Policy
from email.policy import default as default_policy
from email.utils import format_datetime, formataddr
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from adapters.interfaces import Mailer, PermanentJobError, PermanentMailError, TemporaryMailError
from db.models import EmailDelivery, Narration, NotificationSettings, User, utcnow
from services.downloads import DownloadKind, sign_link
from services.errors import DomainError, ErrorCode
from services.messages import NotifyJob
from services.principal import Principal
from services.signing import LinkSigner

LINK_TTL = timedelta(days=7)
_templates = Environment(
    loader=PackageLoader("services", "templates"), autoescape=select_autoescape(["html.j2"]),
    keep_trailing_newline=True,
)



class _OneLineHeader(UnstructuredHeader, BaseHeader):
    """Never folded. Python folds a long `<URL>` (RFC 2369) into RFC 2047 encoded words, which mail clients
    do not decode there (no one-click unsubscribe), and a folded Message-ID reads back with a leading
    space. One line under RFC 5322's 998 characters is valid."""

    def fold(self, *, policy: Policy) -> str:
        return f"{self.name}: {self}{policy.linesep}"


_headers = HeaderRegistry()
for _name in ("list-unsubscribe", "message-id"):
    _headers.map_to_type(_name, _OneLineHeader)
_MAIL_POLICY = default_policy.clone(header_factory=_headers)


@dataclass(slots=True)
class NotifyDeps:
    sessions: async_sessionmaker[AsyncSession]
    mailer: Mailer
    download_signer: LinkSigner
    unsubscribe_signer: LinkSigner
    public_url: str
    mail_from: str


async def get_settings(session: AsyncSession, *, user_id: uuid.UUID) -> NotificationSettings:
    """The user's preferences (defaults: both emails on)."""
    row = await session.get(NotificationSettings, user_id)
    return row or NotificationSettings(user_id=user_id, email_on_ready=True, email_on_failure=True)


async def update_settings(
    session: AsyncSession, *, principal: Principal, email_on_ready: bool | None, email_on_failure: bool | None
) -> NotificationSettings:
    row = await session.get(NotificationSettings, principal.user_id)
    if row is None:
        row = NotificationSettings(user_id=principal.user_id, email_on_ready=True, email_on_failure=True)
        session.add(row)
    if email_on_ready is not None:
        row.email_on_ready = email_on_ready
    if email_on_failure is not None:
        row.email_on_failure = email_on_failure
    await session.commit()
    return row


def unsubscribe_token(signer: LinkSigner, user_id: uuid.UUID) -> str:
    return signer.sign({"u": str(user_id)})


async def unsubscribe(session: AsyncSession, *, signer: LinkSigner, token: str) -> uuid.UUID:
    """Turn every email off for the user named by a signed token (no login needed; tokens never expire)."""
    data = signer.verify(token, max_age=None)
    try:
        user_id = uuid.UUID(str(data["u"]))
    except (KeyError, ValueError) as exc:
        raise DomainError(ErrorCode.TOKEN_INVALID, "this link is not valid") from exc
    if await session.get(User, user_id) is None:
        raise DomainError(ErrorCode.NOT_FOUND, "account not found")
    row = await session.get(NotificationSettings, user_id)
    if row is None:
        row = NotificationSettings(user_id=user_id)
        session.add(row)
    row.email_on_ready = False
    row.email_on_failure = False
    await session.commit()
    return user_id


def _insert_ignore(session: AsyncSession, values: dict[str, Any]) -> Any:
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    return insert(EmailDelivery).values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"])


def _seconds(duration: float | None) -> str:
    """"6 seconds", "1 second"; "" when unknown."""
    if not duration:
        return ""
    n = max(1, round(duration))
    return f"{n} second" if n == 1 else f"{n} seconds"


def build_message(deps: NotifyDeps, *, user: User, narration: Narration, job: NotifyJob) -> EmailMessage:
    """Render the email (plain text and HTML) for a finished narration."""
    token = unsubscribe_token(deps.unsubscribe_signer, user.id)
    unsubscribe_url = f"{deps.public_url.rstrip('/')}/unsubscribe?token={token}"
    ctx: dict[str, Any] = {"name": user.display_name or "there", "unsubscribe_url": unsubscribe_url}
    if job.status == "READY":
        def link(kind: DownloadKind) -> str:
            return sign_link(deps.download_signer, public_url=deps.public_url, narration_id=narration.id,
                             owner_id=user.id, kind=kind, fmt=None, ttl=LINK_TTL).url

        ctx.update(
            text=narration.text or "",
            duration=_seconds(narration.duration_seconds),
            audio_url=link(DownloadKind.AUDIO),
            text_url=link(DownloadKind.TEXT),
            link_days=LINK_TTL.days,
        )
        template, subject = "narration_ready", "Your narration is ready"
    else:
        ctx.update(error=narration.error_message or "something went wrong", retry_hint="")
        template, subject = "narration_failed", "We could not narrate your photo"
    msg = EmailMessage(policy=_MAIL_POLICY)
    msg["Subject"] = subject
    msg["From"] = deps.mail_from
    msg["To"] = formataddr((user.display_name, user.email or ""))
    msg["Date"] = format_datetime(utcnow())
    # Derived from the dedupe key, so a rare resend after a crash is recognisably the same email.
    msg["Message-ID"] = f"<{job.message_id.replace(':', '.')}@talkative.photo>"
    msg["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(_templates.get_template(f"{template}.txt.j2").render(ctx))
    msg.add_alternative(_templates.get_template(f"{template}.html.j2").render(ctx), subtype="html")
    return msg


async def send_notification(deps: NotifyDeps, job: NotifyJob) -> str:
    """Send the email for one notify message, at most once per dedupe key. Returns the delivery status.

    Temporary SMTP failures raise (the queue retries with backoff); permanent ones are recorded and raise
    PermanentJobError so the message goes to the dead-letter queue.
    """
    async with deps.sessions() as session:
        narration = await session.get(Narration, job.narration_id)
        if narration is None:
            return "SKIPPED"  # deleted before we got to it
        await session.execute(_insert_ignore(session, {
            "dedupe_key": job.message_id, "user_id": narration.owner_id, "narration_id": narration.id,
            "status": "PENDING", "attempts": 0,
        }))
        # The row lock makes a concurrent duplicate wait, then see SENT.
        delivery = await session.scalar(
            select(EmailDelivery).where(EmailDelivery.dedupe_key == job.message_id).with_for_update()
        )
        assert delivery is not None
        if delivery.status != "PENDING":
            settled = delivery.status  # read before the rollback expires the row (no lazy load in async)
            await session.rollback()
            return settled
        user = await session.get(User, narration.owner_id)
        prefs = await get_settings(session, user_id=narration.owner_id)
        wanted = prefs.email_on_ready if job.status == "READY" else prefs.email_on_failure
        if user is None or not user.email or not wanted:
            delivery.status = "SKIPPED"
            await session.commit()
            return "SKIPPED"
        message = build_message(deps, user=user, narration=narration, job=job)
        delivery.attempts += 1
        try:
            await deps.mailer.send(message)
        except TemporaryMailError as exc:
            delivery.error = str(exc)[:1000]
            await session.commit()
            raise
        except PermanentMailError as exc:
            delivery.status = "FAILED"
            delivery.error = str(exc)[:1000]
            await session.commit()
            raise PermanentJobError(f"mail refused: {exc}") from exc
        delivery.status = "SENT"
        delivery.sent_at = utcnow()
        delivery.error = None
        await session.commit()
        return "SENT"
