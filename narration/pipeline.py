"""The narration pipeline: prepare -> describe -> speak -> encode, with progress and timings.

CPU work runs in worker threads (asyncio.to_thread), so the event loop stays free. Models live in the
providers, which load lazily and once; Engine.shared() keeps one engine per configuration per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import ClassVar

from narration.audio import CONTENT_TYPES, audio_duration, convert_audio, encode_pcm
from narration.errors import EngineError, NarrationError
from narration.image import PreparedImage, prepare_image
from narration.options import EngineConfig, NarrationOptions
from narration.speech.base import Speech, SpeechProvider
from narration.vision.base import Report, VisionProvider

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, str], Awaitable[None] | None]
STAGES = ("prepare", "describe", "speak", "encode")


@dataclass(frozen=True, eq=False)
class NarrationResult:
    text: str
    audio: bytes
    audio_format: str
    content_type: str
    duration_seconds: float
    timings: dict[str, float]  # seconds per stage
    vision_provider: str
    speech_provider: str
    image: PreparedImage = field(repr=False)
    language: str = "en"  # the language the text is actually in (the local provider speaks English only)


def make_vision(config: EngineConfig) -> VisionProvider:
    if config.vision_provider == "openai":
        from narration.vision.openai import OpenAIVisionProvider

        return OpenAIVisionProvider(config)
    from narration.vision.local import LocalVisionProvider

    return LocalVisionProvider(config.threads, config.local_models_dir)


def make_speech(config: EngineConfig) -> SpeechProvider:
    if config.speech_provider == "openai":
        from narration.speech.openai import OpenAISpeechProvider

        return OpenAISpeechProvider(config)
    from narration.speech.piper import PiperSpeechProvider

    return PiperSpeechProvider(config.threads, config.local_models_dir)


class _Progress:
    """Delivers (stage, percent, message) in order from the loop and from worker threads.

    Worker threads only enqueue (never block); one task calls the callback. A failing callback is
    logged and ignored: progress is a courtesy, the narration itself must not fail because of it.
    """

    def __init__(self, callback: ProgressCallback | None) -> None:
        self.callback = callback
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple[str, int, str] | None] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _Progress:
        if self.callback:
            self.task = asyncio.create_task(self._deliver())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.task:
            self._put(None)
            await self.task

    async def _deliver(self) -> None:
        assert self.callback is not None
        while (event := await self.queue.get()) is not None:
            try:
                outcome = self.callback(*event)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                log.warning("progress callback failed for %s", event, exc_info=True)

    def _put(self, item: tuple[str, int, str] | None) -> None:
        # Always through call_soon_threadsafe, from the loop too: one FIFO keeps events in call order.
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening any more
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def emit(self, stage: str, percent: int, message: str) -> None:
        if self.callback:
            self._put((stage, max(0, min(100, int(percent))), message))

    def reporter(self, stage: str) -> Report:
        def report(percent: int, message: str) -> None:
            self.emit(stage, percent, message)

        return report


class Engine:
    """Photo in, spoken narration out. Safe to share between concurrent narrations."""

    _shared: ClassVar[dict[EngineConfig, Engine]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        self.vision = make_vision(self.config)
        self.speech = make_speech(self.config)

    @classmethod
    def shared(cls, config: EngineConfig | None = None) -> Engine:
        """The process-wide engine for this configuration (models load once and are reused)."""
        config = config or EngineConfig()
        with cls._shared_lock:
            engine = cls._shared.get(config)
            if engine is None:
                engine = cls._shared[config] = cls(config)
            return engine

    async def warm_up(self) -> None:
        """Load every model now instead of on the first photo."""
        await asyncio.to_thread(self._load)

    def _load(self) -> None:
        self.vision.load()
        self.speech.load()

    async def narrate(
        self, photo: bytes, options: NarrationOptions | None = None, on_progress: ProgressCallback | None = None
    ) -> NarrationResult:
        """Prepare, describe, speak and encode one photo. Raises ImageError, InvalidOptions or EngineError."""
        options = options or NarrationOptions()
        timings: dict[str, float] = {}
        async with _Progress(on_progress) as progress:
            try:
                return await self._run(photo, options, progress, timings)
            except NarrationError:
                raise
            except Exception as exc:  # a bug or a model crash: a stable code outward, the details in the log
                log.exception("narration failed")
                raise EngineError("ENGINE_FAILED", f"the narration engine failed ({type(exc).__name__})") from exc

    async def _run(
        self, photo: bytes, options: NarrationOptions, progress: _Progress, timings: dict[str, float]
    ) -> NarrationResult:
        config = self.config
        progress.emit("prepare", 0, "checking the photo")
        start = time.perf_counter()
        image = await asyncio.to_thread(
            prepare_image, photo, max_bytes=config.max_bytes, max_pixels=config.max_pixels
        )
        timings["prepare"] = time.perf_counter() - start
        progress.emit("prepare", 100, f"{image.format} photo, {image.width} by {image.height} pixels")

        progress.emit("describe", 0, "describing the photo")
        start = time.perf_counter()
        text = await self.vision.describe(image, options, progress.reporter("describe"))
        timings["describe"] = time.perf_counter() - start
        progress.emit("describe", 100, "description written")

        progress.emit("speak", 0, "synthesizing speech")
        start = time.perf_counter()
        speech = await self.speech.speak(text, options, progress.reporter("speak"))
        timings["speak"] = time.perf_counter() - start
        progress.emit("speak", 100, "speech synthesized")

        progress.emit("encode", 0, f"encoding {options.audio_format}")
        start = time.perf_counter()
        audio, duration = await asyncio.to_thread(_encode, speech, options.audio_format)
        timings["encode"] = time.perf_counter() - start
        progress.emit("encode", 100, f"{duration:.1f} seconds of audio")

        local_english = self.vision.name == "local"
        return NarrationResult(
            text=text,
            audio=audio,
            audio_format=options.audio_format,
            content_type=CONTENT_TYPES[options.audio_format],
            duration_seconds=duration,
            timings=timings,
            vision_provider=self.vision.name,
            speech_provider=self.speech.name,
            image=image,
            language="en" if local_english else options.language,
        )


def _encode(speech: Speech, fmt: str) -> tuple[bytes, float]:
    if speech.samples is not None:
        return encode_pcm(speech.samples, speech.sample_rate, fmt)
    if speech.encoded is None or speech.format is None:
        raise EngineError("ENGINE_FAILED", "the speech provider returned no audio")
    try:
        if speech.format == fmt:
            return speech.encoded, audio_duration(speech.encoded)
        return convert_audio(speech.encoded, speech.format, fmt)
    except ValueError as exc:
        raise EngineError("ENGINE_FAILED", f"the speech provider returned unreadable audio: {exc}") from exc

