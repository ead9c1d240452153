"""Queue message types. Messages carry ids only; handlers reload state from the database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

NARRATIONS_QUEUE = "narrations"
NOTIFICATIONS_QUEUE = "notifications"


@dataclass(frozen=True, slots=True)
class NarrateJob:
    """Run the engine for one narration. `run` counts user-requested runs, so a retry is a new message."""

    narration_id: uuid.UUID
    run: int = 1

    @property
    def message_id(self) -> str:
        return f"narrate:{self.narration_id}:{self.run}"

    def to_body(self) -> dict[str, Any]:
        return {"narration_id": str(self.narration_id), "run": self.run}

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> NarrateJob:
        return cls(narration_id=uuid.UUID(str(body["narration_id"])), run=int(body.get("run", 1)))


@dataclass(frozen=True, slots=True)
class NotifyJob:
    """Email the owner that a narration finished. The message id doubles as the email dedupe key."""

    narration_id: uuid.UUID
    status: str
    run: int = 1

    @property
    def message_id(self) -> str:
        return f"notify:{self.narration_id}:{self.status}:{self.run}"

    def to_body(self) -> dict[str, Any]:
        return {"narration_id": str(self.narration_id), "status": self.status, "run": self.run}

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> NotifyJob:
        return cls(
            narration_id=uuid.UUID(str(body["narration_id"])),
            status=str(body["status"]),
            run=int(body.get("run", 1)),
        )
