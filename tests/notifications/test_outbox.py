"""Embedded mode (no URLs set at all): the email lands in DATA_DIR/outbox as an .eml a person can open."""

from __future__ import annotations

import asyncio
import email
import email.policy
from pathlib import Path

import pytest

from tests.downloads.flow import Gql, start_stack
from tests.foundation.fixtures import make_settings
from tests.notifications.mail import check_headers, links, one, outbox_files, parts

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_embedded_mode_writes_an_eml_with_both_parts(tmp_path: Path) -> None:
    settings = make_settings("sqlite", tmp_path / "data")
    assert settings.embedded
    stack = await start_stack(settings)
    try:
        gql = Gql(stack)
        user = await gql.register("Ada")
        row = await gql.narrate(user, seed=21)
        outbox = tmp_path / "data" / "outbox"
        async with asyncio.timeout(20):
            while not outbox_files(outbox):
                await asyncio.sleep(0.05)
        path = one(outbox_files(outbox))
        assert [p.name for p in outbox.iterdir() if p.name.startswith(".")] == []  # no half-written files
        raw = path.read_bytes()
        assert raw.count(b"\n") == raw.count(b"\r\n") > 0  # CRLF line ends, as on the wire
        with path.open("rb") as fh:  # what a mail client does with the file
            message = email.message_from_binary_file(fh, policy=email.policy.default)
        check_headers(message, to=user.email, subject="Your narration is ready", mail_from=settings.mail_from)
        plain, markup = parts(message)
        assert row["text"] in plain and row["text"] in markup
        audio_url, text_url, _ = links(plain)
        assert links(markup)[:2] == [audio_url, text_url]
        text = await stack.http.get(text_url)
        assert text.status_code == 200 and text.text == row["text"]
        audio = await stack.http.get(audio_url, headers={"Range": "bytes=0-3"})
        assert audio.status_code == 206 and len(audio.content) == 4
    finally:
        await stack.stop()
