"""Narration types: the narration itself, its options, progress events, uploads, downloads, preferences."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any

import strawberry

from db.models import Narration as NarrationRow
from db.models import NarrationStatus as StatusValue
from db.models import NotificationSettings as SettingsRow
from db.models import Photo as PhotoRow
from graph.errors import Error
from services.downloads import DownloadKind as DownloadKindValue
from services.errors import ErrorCode
from services.progress import ProgressEvent as EventValue

NarrationStatus = strawberry.enum(StatusValue, name="NarrationStatus",
                                  description="QUEUED → PROCESSING → READY or FAILED.")
DownloadKind = strawberry.enum(DownloadKindValue, name="DownloadKind")


@strawberry.enum(description="How much to say: one or two sentences, a paragraph, or everything seen.")
class DetailLevel(enum.Enum):
    BRIEF = "brief"
    STANDARD = "standard"
    DETAILED = "detailed"


@strawberry.enum(description="SCENE describes the photo; DOCUMENT reads its text aloud; ALT_TEXT ≤ 125 characters.")
class NarrationMode(enum.Enum):
    SCENE = "scene"
    DOCUMENT = "document"
    ALT_TEXT = "alt_text"


@strawberry.enum
class AudioFormat(enum.Enum):
    MP3 = "mp3"
    OPUS = "opus"
    WAV = "wav"


@strawberry.input(description="Choices for a narration; every field has a default.")
class NarrationOptionsInput:
    detail: DetailLevel = DetailLevel.STANDARD
    mode: NarrationMode = NarrationMode.SCENE
    language: str = strawberry.field(default="en", description="A BCP 47 tag such as en or pt-BR.")
    voice: str | None = strawberry.field(default=None, description="A voice of the speech provider.")
    speed: float = strawberry.field(default=1.0, description="0.25 to 4.0.")
    audio_format: AudioFormat = AudioFormat.MP3

    def choices(self) -> dict[str, Any]:
        """The client's choices as the engine names them."""
        return {"detail": self.detail.value, "mode": self.mode.value, "language": self.language,
                "voice": self.voice, "speed": self.speed, "audio_format": self.audio_format.value}


@strawberry.type
class NarrationOptions:
    detail: DetailLevel
    mode: NarrationMode
    language: str
    voice: str | None
    speed: float
    audio_format: AudioFormat


@strawberry.type(description="The cleaned photo that was narrated (metadata removed).")
class PhotoInfo:
    width: int
    height: int
    format: str = strawberry.field(description="The format it was uploaded in, e.g. JPEG or HEIF.")
    content_type: str
    byte_size: int


@strawberry.type
class AudioInfo:
    format: AudioFormat
    duration_seconds: float
    byte_size: int


@strawberry.type
class StageTiming:
    stage: str
    seconds: float


@strawberry.type(description="Why a narration FAILED.")
class NarrationFailure:
    code: ErrorCode
    message: str


def _code(value: str | None) -> ErrorCode:
    try:
        return ErrorCode(value or ErrorCode.ENGINE_FAILED)
    except ValueError:
        return ErrorCode.VALIDATION if value == "INVALID_OPTIONS" else ErrorCode.ENGINE_FAILED


@strawberry.type
class Narration:
    id: strawberry.ID
    status: NarrationStatus  # type: ignore[valid-type]
    options: NarrationOptions
    text: str | None
    error: NarrationFailure | None
    photo: PhotoInfo | None
    audio: AudioInfo | None
    timings: list[StageTiming]
    vision_provider: str | None
    speech_provider: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_model(cls, row: NarrationRow, photo: PhotoRow | None) -> Narration:
        o = row.options
        audio = None
        if row.audio_format and row.duration_seconds is not None:
            audio = AudioInfo(format=AudioFormat(row.audio_format), duration_seconds=row.duration_seconds,
                              byte_size=row.audio_byte_size or 0)
        return cls(
            id=strawberry.ID(str(row.id)), status=row.status,
            options=NarrationOptions(
                detail=DetailLevel(o.get("detail", "standard")), mode=NarrationMode(o.get("mode", "scene")),
                language=o.get("language", "en"), voice=o.get("voice"), speed=float(o.get("speed", 1.0)),
                audio_format=AudioFormat(o.get("audio_format", "mp3")),
            ),
            text=row.text,
            error=NarrationFailure(code=_code(row.error_code), message=row.error_message or "")
            if row.status == StatusValue.FAILED else None,
            photo=PhotoInfo(width=photo.width, height=photo.height, format=photo.source_format,
                            content_type=photo.content_type, byte_size=photo.byte_size) if photo else None,
            audio=audio,
            timings=[StageTiming(stage=k, seconds=float(v)) for k, v in (row.timings or {}).items()],
            vision_provider=row.vision_provider, speech_provider=row.speech_provider, attempts=row.attempts,
            created_at=row.created_at, started_at=row.started_at, finished_at=row.finished_at,
        )


@strawberry.type(description="One step of a narration. `sequence` grows by one per event; the first event "
                             "a subscription sends is the current state from the database.")
class ProgressEvent:
    narration_id: strawberry.ID
    sequence: int
    status: NarrationStatus  # type: ignore[valid-type]
    stage: str | None = strawberry.field(description="prepare, describe, speak or encode while PROCESSING.")
    percent: int
    message: str

    @classmethod
    def from_event(cls, event: EventValue) -> ProgressEvent:
        return cls(narration_id=strawberry.ID(str(event.narration_id)), sequence=event.sequence,
                   status=event.status, stage=event.stage, percent=event.percent, message=event.message)


@strawberry.type
class HttpHeader:
    name: str
    value: str


@strawberry.type(description="Where to PUT the photo, then call completePhotoUpload with the ticket.")
class PhotoUpload:
    ticket: strawberry.ID
    url: str
    method: str
    headers: list[HttpHeader]
    expires_at: datetime


@strawberry.type
class DownloadLink:
    url: str
    expires_at: datetime


@strawberry.type
class DeletedNarration:
    id: strawberry.ID


@strawberry.type
class NotificationSettings:
    email_on_ready: bool
    email_on_failure: bool

    @classmethod
    def from_model(cls, row: SettingsRow) -> NotificationSettings:
        return cls(email_on_ready=row.email_on_ready, email_on_failure=row.email_on_failure)


NarrationResult = Annotated[Narration | Error, strawberry.union("NarrationResult")]
PhotoUploadResult = Annotated[PhotoUpload | Error, strawberry.union("PhotoUploadResult")]
DownloadLinkResult = Annotated[DownloadLink | Error, strawberry.union("DownloadLinkResult")]
DeleteNarrationResult = Annotated[DeletedNarration | Error, strawberry.union("DeleteNarrationResult")]
NotificationSettingsResult = Annotated[NotificationSettings | Error, strawberry.union("NotificationSettingsResult")]
