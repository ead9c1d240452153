"""Embedded-mode mailer: each message becomes an `.eml` file a person can open in any mail client."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import tempfile
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid
from pathlib import Path


class OutboxMailer:
    """Writes `<UTC time>-<uuid>.eml` into `folder`, atomically (temp file, fsync, rename)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def _write(self, message: EmailMessage) -> Path:
        message = copy.deepcopy(message)  # the headers added below are ours, not the caller's
        # A real server would add these; do it here so the file looks like mail that was sent.
        if "Date" not in message:
            message["Date"] = formatdate(localtime=False, usegmt=True)
        if "Message-ID" not in message:
            message["Message-ID"] = make_msgid(domain="talkative.local")
        self.folder.mkdir(parents=True, exist_ok=True)
        data = message.as_bytes(policy=SMTP)  # CRLF line ends, as on the wire
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex}.eml"
        # Temp names start with a dot so readers listing *.eml never see half a message.
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            target = self.folder / name
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return target

    async def send(self, message: EmailMessage) -> None:
        await asyncio.to_thread(self._write, message)

    async def close(self) -> None:
        return None
