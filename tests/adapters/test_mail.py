"""Mail: aiosmtplib against a real aiosmtpd (STARTTLS, implicit TLS, AUTH, Maildir), and the outbox."""

from __future__ import annotations

import email
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from adapters.interfaces import PermanentMailError, TemporaryMailError
from adapters.mail_outbox import OutboxMailer
from adapters.mail_smtp import SmtpConfig, SmtpMailer
from tests.support.servers import SmtpServer, free_port


def message(subject: str = "Your narration is ready", to: str = "reader@example.com") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Talkative Photo <no-reply@talkative.test>"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("Plain text: https://talkative.test/n/1")
    msg.add_alternative("<p>HTML: <a href='https://talkative.test/n/1'>listen</a></p>", subtype="html")
    return msg


@pytest.fixture
async def mailer(smtp_server: SmtpServer) -> AsyncIterator[SmtpMailer]:
    m = SmtpMailer(smtp_server.url())
    yield m
    await m.close()


async def test_starttls_login_delivers_to_maildir(mailer: SmtpMailer, smtp_server: SmtpServer) -> None:
    await mailer.send(message())
    [received] = smtp_server.messages()
    assert received["Subject"] == "Your narration is ready"
    assert received["To"] == "reader@example.com"
    assert received["From"] == "Talkative Photo <no-reply@talkative.test>"
    assert received.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in received.get_payload()] == ["text/plain", "text/html"]


async def test_implicit_tls(smtp_server: SmtpServer) -> None:
    mailer = SmtpMailer(smtp_server.url(implicit_tls=True))
    await mailer.send(message("implicit"))
    await mailer.close()
    assert [m["Subject"] for m in smtp_server.messages()] == ["implicit"]


async def test_connection_reused_for_a_burst(mailer: SmtpMailer, smtp_server: SmtpServer) -> None:
    for i in range(5):
        await mailer.send(message(f"burst {i}"))
    assert len(smtp_server.messages()) == 5
    assert len(set(smtp_server.peers)) == 1
    assert mailer.connections_opened == 1


async def test_reconnects_after_the_connection_dropped(mailer: SmtpMailer, smtp_server: SmtpServer) -> None:
    await mailer.send(message("before"))
    assert mailer._client is not None
    mailer._client.close()  # the server or network dropped us between sends
    await mailer.send(message("after"))
    assert mailer.connections_opened == 2
    assert sorted(m["Subject"] for m in smtp_server.messages()) == ["after", "before"]


async def test_4xx_is_temporary_then_recovers(mailer: SmtpMailer, smtp_server: SmtpServer) -> None:
    smtp_server.fail("RCPT", "451 4.3.0 Mailbox temporarily unavailable")
    with pytest.raises(TemporaryMailError, match="451"):
        await mailer.send(message())
    smtp_server.fail("DATA", "421 4.3.2 System not accepting messages")
    with pytest.raises(TemporaryMailError, match="421"):
        await mailer.send(message())
    await mailer.send(message("third time"))
    assert [m["Subject"] for m in smtp_server.messages()] == ["third time"]


async def test_5xx_is_permanent(mailer: SmtpMailer, smtp_server: SmtpServer) -> None:
    smtp_server.fail("RCPT", "550 5.1.1 No such user")
    with pytest.raises(PermanentMailError, match="550"):
        await mailer.send(message())
    smtp_server.fail("DATA", "554 5.7.1 Rejected as spam")
    with pytest.raises(PermanentMailError, match="554"):
        await mailer.send(message())
    assert smtp_server.messages() == []


async def test_bad_password_is_permanent(smtp_server: SmtpServer) -> None:
    url = smtp_server.url().replace(smtp_server.password, "wrong")
    mailer = SmtpMailer(url)
    with pytest.raises(PermanentMailError, match="535"):
        await mailer.send(message())
    await mailer.close()


async def test_unreachable_server_is_temporary() -> None:
    mailer = SmtpMailer(f"smtp://127.0.0.1:{free_port()}?starttls=false&timeout=2")
    with pytest.raises(TemporaryMailError):
        await mailer.send(message())


async def test_untrusted_certificate_is_temporary(smtp_server: SmtpServer) -> None:
    """Without the test CA the certificate does not verify (a deployment error, retried then dead-lettered)."""
    mailer = SmtpMailer(f"smtp://{smtp_server.host}:{smtp_server.port}?starttls=true&timeout=5")
    with pytest.raises(TemporaryMailError):
        await mailer.send(message())
    await mailer.close()


def test_url_parsing() -> None:
    cfg = SmtpConfig.from_url("smtp://us%40er:p%3Ass@mail.example.com?starttls=true&verify=false&timeout=5")
    assert (cfg.host, cfg.port, cfg.username, cfg.password) == ("mail.example.com", 587, "us@er", "p:ss")
    assert (cfg.start_tls, cfg.verify, cfg.timeout, cfg.use_tls) == (True, False, 5.0, False)
    tls = SmtpConfig.from_url("smtps://mail.example.com")
    assert (tls.port, tls.use_tls, tls.start_tls) == (465, True, False)
    assert SmtpConfig.from_url("smtp://relay:2525").start_tls is None  # upgrade when offered
    for bad in ("http://x", "smtp://", "smtp://x?tls=1", "smtp://x?starttls=maybe", "smtp://x?timeout=soon",
                "smtps://x?starttls=true"):
        with pytest.raises(ValueError, match="MAIL_URL"):
            SmtpConfig.from_url(bad)


async def test_outbox_writes_parseable_eml(tmp_path: Path) -> None:
    outbox = OutboxMailer(tmp_path / "outbox")
    original = message("to the outbox")
    await outbox.send(original)
    await outbox.send(message("second"))
    files = sorted((tmp_path / "outbox").iterdir())
    assert [f.suffix for f in files] == [".eml", ".eml"]  # no temp files left behind
    parsed = email.message_from_bytes(files[0].read_bytes())
    assert parsed["Subject"] == "to the outbox"
    assert parsed["Message-ID"] and parsed["Date"]
    assert [p.get_content_type() for p in parsed.get_payload()] == ["text/plain", "text/html"]
    assert "Message-ID" not in original  # the caller's message is left alone


async def test_idle_connection_is_replaced(smtp_server: SmtpServer) -> None:
    mailer = SmtpMailer(smtp_server.url(), idle_seconds=0)
    await mailer.send(message("one"))
    await mailer.send(message("two"))
    await mailer.close()
    assert mailer.connections_opened == 2
    assert len(smtp_server.messages()) == 2
