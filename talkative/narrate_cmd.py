"""`talkative narrate PHOTO...`: narrate photos from the command line, no server needed."""

from __future__ import annotations

import asyncio
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from narration import EngineConfig, NarrationOptions

STAGE_WEIGHTS = {"prepare": 5, "describe": 35, "speak": 50, "encode": 10}  # share of a photo's progress bar


class Detail(StrEnum):
    brief = "brief"
    standard = "standard"
    detailed = "detailed"


class Mode(StrEnum):
    scene = "scene"
    document = "document"
    alt_text = "alt_text"


class AudioFormat(StrEnum):
    wav = "wav"
    mp3 = "mp3"
    opus = "opus"


def narrate(
    photos: Annotated[list[Path], typer.Argument(help="Photos to narrate (JPEG, PNG, WebP, GIF, HEIC).")],
    detail: Annotated[Detail, typer.Option(help="How much to say.")] = Detail.standard,
    mode: Annotated[Mode, typer.Option(help="scene, document (read the text aloud) or alt_text.")] = Mode.scene,
    language: Annotated[str, typer.Option(help="Language tag, e.g. en or pt-BR.")] = "en",
    voice: Annotated[str | None, typer.Option(help="Voice name (provider specific).")] = None,
    speed: Annotated[float, typer.Option(help="Speaking speed, 0.25 to 4.0.")] = 1.0,
    audio_format: Annotated[AudioFormat, typer.Option("--format", help="Audio format.")] = AudioFormat.mp3,
    out: Annotated[Path, typer.Option("--out", help="Folder for <stem>.txt and <stem>.<format>.")] = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per photo.")] = False,
) -> None:
    """Describe each photo in words and speech; writes OUT/<stem>.txt and OUT/<stem>.<format>."""
    from narration import InvalidOptions, NarrationOptions

    try:
        options = NarrationOptions(detail=detail.value, mode=mode.value, language=language, voice=voice,
                                   speed=speed, audio_format=audio_format.value)
        config = _engine_config()
    except InvalidOptions as exc:
        _error(f"invalid option: {exc.message}")
        raise typer.Exit(2) from None
    try:
        failures = _narrate_all(photos, options, config, out, as_json)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except Exception as exc:  # the promise is: one line, never a traceback
        _error(f"narration failed: {exc}")
        raise typer.Exit(1) from None
    if failures:
        raise typer.Exit(1)


def _engine_config() -> EngineConfig:
    from talkative.settings import get_settings
    from talkative.wiring import engine_config

    return engine_config(get_settings())


def _error(message: str) -> None:
    print(f"talkative narrate: {message}", file=sys.stderr, flush=True)


def _unique_stem(path: Path, used: set[str]) -> str:
    stem, n = path.stem or "photo", 2
    candidate = stem
    while candidate in used:
        candidate, n = f"{stem}-{n}", n + 1
    used.add(candidate)
    return candidate


def _narrate_all(
    photos: list[Path], options: NarrationOptions, config: EngineConfig, out: Path, as_json: bool
) -> int:
    from tqdm import tqdm

    from narration import Engine, NarrationError

    out.mkdir(parents=True, exist_ok=True)
    engine = Engine.shared(config)
    runner = asyncio.Runner()  # one loop for every photo: clients bound to it stay usable
    show_bar = sys.stderr.isatty() and not as_json
    bar = tqdm(total=100 * len(photos), disable=not show_bar, file=sys.stderr, unit="%",
               bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}")
    try:
        bar.set_description_str("loading models")
        runner.run(engine.warm_up())
        failures, used = 0, set[str]()
        for index, photo in enumerate(photos):
            base = 100 * index
            done = {stage: 0 for stage in STAGE_WEIGHTS}

            def progress(stage: str, percent: int, message: str, photo: Path = photo, base: int = base,
                         done: dict[str, int] = done) -> None:
                done[stage] = max(done.get(stage, 0), percent)
                position = base + sum(STAGE_WEIGHTS[s] * done[s] // 100 for s in STAGE_WEIGHTS)
                bar.set_description_str(f"{photo.name}: {message}")
                bar.update(max(0, position - bar.n))

            try:
                data = photo.read_bytes()
            except OSError as exc:
                failures += 1
                bar.clear()
                _error(f"{photo}: cannot read the file ({exc.strerror or exc})")
                bar.update(base + 100 - bar.n)
                continue
            try:
                result = runner.run(engine.narrate(data, options, progress if show_bar else None))
            except NarrationError as exc:
                failures += 1
                bar.clear()
                _error(f"{photo}: {exc.message} [{exc.code}]")
                bar.update(base + 100 - bar.n)
                continue
            stem = _unique_stem(photo, used)
            text_path = out / f"{stem}.txt"
            audio_path = out / f"{stem}.{options.audio_format}"
            text_path.write_text(result.text + "\n", encoding="utf-8")
            audio_path.write_bytes(result.audio)
            bar.update(base + 100 - bar.n)
            if as_json:
                print(json.dumps({
                    "photo": str(photo),
                    "text": result.text,
                    "text_path": str(text_path),
                    "audio_path": str(audio_path),
                    "duration_seconds": round(result.duration_seconds, 3),
                    "timings": {k: round(v, 4) for k, v in result.timings.items()},
                    "vision_provider": result.vision_provider,
                    "speech_provider": result.speech_provider,
                }, ensure_ascii=False), flush=True)
            else:
                bar.clear()
                print(f"{photo} -> {audio_path} ({result.duration_seconds:.1f} s): {result.text}", flush=True)
        return failures
    finally:
        bar.close()
        runner.close()
