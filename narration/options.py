"""What a caller asks for (NarrationOptions) and how the engine is set up (EngineConfig)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from narration.errors import InvalidOptions

Detail = Literal["brief", "standard", "detailed"]
Mode = Literal["scene", "document", "alt_text"]
AudioFormat = Literal["wav", "mp3", "opus"]
VisionProviderName = Literal["local", "openai"]
SpeechProviderName = Literal["piper", "openai"]

DETAILS: tuple[str, ...] = get_args(Detail)
MODES: tuple[str, ...] = get_args(Mode)
AUDIO_FORMATS: tuple[str, ...] = get_args(AudioFormat)
MIN_SPEED, MAX_SPEED = 0.25, 4.0
ALT_TEXT_MAX_CHARS = 125

# BCP 47-ish: "en", "pt-BR", "zh-Hant"; enough to refuse prompt injection through the language field.
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}$")
_VOICE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class NarrationOptions:
    """One narration request. Invalid values raise InvalidOptions (a ValueError)."""

    detail: Detail = "standard"
    mode: Mode = "scene"
    language: str = "en"
    voice: str | None = None
    speed: float = 1.0
    audio_format: AudioFormat = "mp3"

    def __post_init__(self) -> None:
        if self.detail not in DETAILS:
            raise InvalidOptions(f"detail must be one of {', '.join(DETAILS)}")
        if self.mode not in MODES:
            raise InvalidOptions(f"mode must be one of {', '.join(MODES)}")
        if self.audio_format not in AUDIO_FORMATS:
            raise InvalidOptions(f"audio format must be one of {', '.join(AUDIO_FORMATS)}")
        if not isinstance(self.language, str) or not _LANGUAGE.match(self.language):
            raise InvalidOptions("language must be a language tag such as 'en' or 'pt-BR'")
        if self.voice is not None and not _VOICE.match(self.voice):
            raise InvalidOptions("voice must be a short name of letters, digits, '.', '_' or '-'")
        speed = self.speed
        if isinstance(speed, bool) or not isinstance(speed, int | float) or not MIN_SPEED <= speed <= MAX_SPEED:
            raise InvalidOptions(f"speed must be between {MIN_SPEED} and {MAX_SPEED}")

    @property
    def base_language(self) -> str:
        """The primary subtag, lower-cased ("pt-BR" -> "pt")."""
        return self.language.split("-")[0].lower()


@dataclass(frozen=True)
class EngineConfig:
    """Provider choice, endpoints, model locations and limits (hashable: Engine.shared keys on it)."""

    vision_provider: VisionProviderName = "local"
    speech_provider: SpeechProviderName = "piper"
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    openai_vision_model: str = "gpt-4o-mini"
    openai_speech_model: str = "gpt-4o-mini-tts"
    local_models_dir: Path | None = None
    threads: int = 2
    max_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 50_000_000
    openai_timeout_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.vision_provider not in get_args(VisionProviderName):
            raise InvalidOptions("vision_provider must be 'local' or 'openai'")
        if self.speech_provider not in get_args(SpeechProviderName):
            raise InvalidOptions("speech_provider must be 'piper' or 'openai'")
        if self.threads < 1:
            raise InvalidOptions("threads must be at least 1")
        if self.max_bytes < 1 or self.max_pixels < 1:
            raise InvalidOptions("max_bytes and max_pixels must be positive")

    def __repr__(self) -> str:
        # Keep the API key out of logs and tracebacks.
        key = "***" if self.openai_api_key else None
        return (
            f"EngineConfig(vision_provider={self.vision_provider!r}, speech_provider={self.speech_provider!r}, "
            f"openai_base_url={self.openai_base_url!r}, openai_api_key={key!r}, "
            f"openai_vision_model={self.openai_vision_model!r}, openai_speech_model={self.openai_speech_model!r}, "
            f"local_models_dir={self.local_models_dir!r}, threads={self.threads})"
        )
