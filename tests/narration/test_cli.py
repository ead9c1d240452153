"""`talkative narrate` as a user runs it: real process, real files, exit codes, one-line errors."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from typer.testing import CliRunner

from talkative.cli import app
from tests.narration import photos

CLI = "import sys; from talkative.cli import app; sys.argv[0] = 'talkative'; app()"
OUTSIDE_URLS = ("DATABASE_URL", "STORAGE_URL", "QUEUE_URL", "PUBSUB_URL", "MAIL_URL")


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in OUTSIDE_URLS}
    env.update(VISION_PROVIDER="local", SPEECH_PROVIDER="piper", PYTHONPATH=str(Path(__file__).parents[2]))
    return subprocess.run([sys.executable, "-c", CLI, "narrate", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=240)


@pytest.mark.slow
def test_narrate_good_and_bad_photos(tmp_path: Path) -> None:
    (tmp_path / "sign.png").write_bytes(photos.encode(photos.sign("OPEN"), "PNG"))
    (tmp_path / "notes.jpg").write_text("this is not a photo")
    jpeg = photos.encode(photos.noise_photo(640, 480), "JPEG")
    (tmp_path / "broken.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (tmp_path / "exit.heic").write_bytes(photos.encode(photos.sign("EXIT"), "HEIF"))
    out = tmp_path / "out"

    result = run_cli("sign.png", "notes.jpg", "missing.png", "broken.jpg", "exit.heic",
                     "--json", "--format", "wav", "--detail", "brief", "--out", str(out), cwd=tmp_path)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 3, result.stderr
    assert "notes.jpg" in errors[0] and "not an image" in errors[0]
    assert "missing.png" in errors[1] and "cannot read" in errors[1]
    assert "broken.jpg" in errors[2] and "CORRUPT_IMAGE" in errors[2]

    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [Path(x["audio_path"]).name for x in lines] == ["sign.wav", "exit.wav"]
    for item in lines:
        assert set(item) >= {"text", "audio_path", "duration_seconds", "timings", "vision_provider",
                             "speech_provider"}
        assert item["vision_provider"] == "local" and item["speech_provider"] == "piper"
        audio = Path(item["audio_path"]).read_bytes()
        assert sf.info(io.BytesIO(audio)).duration == pytest.approx(item["duration_seconds"], abs=0.05)
    assert "OPEN" in (out / "sign.txt").read_text()
    assert "EXIT" in (out / "exit.txt").read_text()


def test_bad_option_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["narrate", "x.jpg", "--speed", "9", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "speed must be between 0.25 and 4.0" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_help_lists_the_options() -> None:
    result = CliRunner().invoke(app, ["narrate", "--help"])
    assert result.exit_code == 0
    for option in ("--detail", "--mode", "--language", "--voice", "--speed", "--format", "--out", "--json"):
        assert option in result.output
