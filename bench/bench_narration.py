"""Narration engine benchmark: prints medians (models warm) and the peak memory with every model loaded.

    .venv/bin/python bench/bench_narration.py [--runs 7]

Targets (2-core machine): 12 MP JPEG prepared <= 150 ms, local description <= 1 s, speech real-time
factor <= 0.1, whole narration <= 3 s, peak RSS <= 1.5 GB.

The test photos are made first, then measured in a fresh child process, so the peak RSS is that of
the engine at work (models, 12 MP decode buffers), not of the photo generator.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image

from narration import Engine, EngineConfig, NarrationOptions, prepare_image
from narration.speech.piper import PiperSpeechProvider
from narration.vision.compose import compose
from narration.vision.local import LocalVisionProvider
from tests.narration import photos


def median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def twelve_megapixels(image: Image.Image) -> Image.Image:
    return image.resize((4000, 3000), Image.Resampling.BICUBIC)


def row(name: str, value: str, target: str) -> None:
    print(f"{name:<44} {value:>12}   (target {target})")


def make_photos(folder: Path) -> None:
    (folder / "camera.jpg").write_bytes(photos.encode(photos.noise_photo(), "JPEG", quality=92))
    (folder / "rotated.jpg").write_bytes(photos.with_exif(photos.noise_photo(), orientation=6, quality=92))
    (folder / "cat.jpg").write_bytes(photos.encode(twelve_megapixels(photos.sample("chelsea")), "JPEG", quality=92))
    (folder / "portrait.jpg").write_bytes(
        photos.encode(twelve_megapixels(photos.sample("astronaut")), "JPEG", quality=92)
    )
    (folder / "document.png").write_bytes(photos.encode(photos.document(), "PNG"))


async def main(runs: int, folder: Path) -> None:
    engine = Engine.shared(EngineConfig(threads=2))
    start = time.perf_counter()
    await engine.warm_up()
    print(f"models loaded in {time.perf_counter() - start:.1f} s\n")
    assert isinstance(engine.vision, LocalVisionProvider) and isinstance(engine.speech, PiperSpeechProvider)

    camera = (folder / "camera.jpg").read_bytes()
    rotated = (folder / "rotated.jpg").read_bytes()
    row("prepare 12 MP JPEG, upright (lossless path)", f"{median_ms(lambda: prepare_image(camera), runs):.0f} ms",
        "<= 150 ms")
    row("prepare 12 MP JPEG, EXIF-rotated (re-encode)", f"{median_ms(lambda: prepare_image(rotated), runs):.0f} ms",
        "<= 150 ms")

    subjects = {name: (folder / file).read_bytes()
                for name, file in (("cat", "cat.jpg"), ("portrait", "portrait.jpg"), ("document", "document.png"))}
    for name, data in subjects.items():
        prepared = prepare_image(data)
        ms = median_ms(lambda p=prepared: engine.vision.analyse(p), runs)  # type: ignore[attr-defined]
        row(f"local description, {name}", f"{ms:.0f} ms", "<= 1000 ms")

    voice = engine.speech.voice(None)
    text = compose(engine.vision.analyse(prepare_image(subjects["cat"])), NarrationOptions())
    factors = []
    for _ in range(runs):
        start = time.perf_counter()
        speech = engine.speech.synthesize(voice, text, 1.0)
        assert speech.samples is not None
        factors.append((time.perf_counter() - start) / (len(speech.samples) / speech.sample_rate))
    row("speech real-time factor (Piper, joe medium)", f"{statistics.median(factors):.3f}", "<= 0.1")

    totals = []
    for _ in range(runs):
        start = time.perf_counter()
        result = await engine.narrate(subjects["cat"], NarrationOptions(audio_format="mp3"))
        totals.append(time.perf_counter() - start)
    row("whole narration, 12 MP JPEG -> MP3", f"{statistics.median(totals) * 1000:.0f} ms", "<= 3000 ms")
    print(f"{'':<44} stages: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in result.timings.items()))
    print(f"{'':<44} audio: {result.duration_seconds:.1f} s, {len(result.audio) / 1024:.0f} KiB")

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row("peak RSS, every model loaded", f"{peak_mb:.0f} MB", "<= 1536 MB")
    print(f"\nexample text: {result.text}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--photos", type=Path, help="folder of already-made photos (used by the child run)")
    arguments = parser.parse_args()
    if arguments.photos:
        asyncio.run(main(arguments.runs, arguments.photos))
    else:
        with tempfile.TemporaryDirectory() as folder:
            make_photos(Path(folder))
            command = [sys.executable, __file__, "--runs", str(arguments.runs), "--photos", folder]
            sys.exit(subprocess.run(command, check=False).returncode)
