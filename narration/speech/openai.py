"""Speech through an OpenAI-compatible `audio/speech` endpoint."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from narration.audio import decode_audio
from narration.errors import EngineError
from narration.openai_client import OpenAIProvider, translate
from narration.options import EngineConfig, NarrationOptions
from narration.prompts import speech_instructions
from narration.speech.base import Speech
from narration.text import group_sentences, split_sentences
from narration.vision.base import Report

DEFAULT_VOICE = "alloy"  # offered by every OpenAI speech model
MAX_INPUT_CHARS = 4000  # the API takes 4096 characters per request


def supports_instructions(model: str) -> bool:
    """Only the gpt-4o family of speech models accepts voice instructions (tts-1 and tts-1-hd reject them)."""
    name = model.lower()
    return "gpt-4o" in name and "tts" in name


class OpenAISpeechProvider(OpenAIProvider):
    name = "openai"

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self.model = config.openai_speech_model

    async def speak(self, text: str, options: NarrationOptions, report: Report) -> Speech:
        chunks = group_sentences(split_sentences(text, MAX_INPUT_CHARS), MAX_INPUT_CHARS) or [text]
        fmt = options.audio_format
        parts: list[bytes] = []
        for i, chunk in enumerate(chunks):
            report(round(100 * i / len(chunks)), f"requesting speech {i + 1} of {len(chunks)}")
            parts.append(await self._request(chunk, options, fmt))
        report(100, "speech ready")
        if len(parts) == 1:
            return Speech(encoded=parts[0], format=fmt)
        # Several requests: join the decoded samples; the encode stage writes one file.
        decoded = await asyncio.to_thread(lambda: [decode_audio(p) for p in parts])
        rates = {rate for _, rate in decoded}
        if len(rates) != 1:
            raise EngineError("ENGINE_FAILED", "the speech service returned audio at mixed sample rates")
        samples = np.concatenate([s.mean(axis=1) for s, _ in decoded]).astype(np.float32)
        return Speech(samples=samples, sample_rate=rates.pop())

    async def _request(self, text: str, options: NarrationOptions, fmt: str) -> bytes:
        import openai

        extra: dict[str, Any] = {}
        if supports_instructions(self.model):
            extra["instructions"] = speech_instructions(options)
        try:
            response = await self.client().audio.speech.create(
                model=self.model,
                voice=options.voice or DEFAULT_VOICE,
                input=text,
                speed=options.speed,
                response_format=fmt,
                **extra,
            )
            data = response.content if hasattr(response, "content") else await response.aread()
        except openai.OpenAIError as exc:
            raise translate(exc, "the speech request") from exc
        if not data:
            raise EngineError("ENGINE_FAILED", "the speech service returned no audio")
        return bytes(data)
