"""Audio encoding and conversion; text helpers for speech."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from narration import convert_audio
from narration.audio import audio_duration, encode_pcm
from narration.text import split_sentences, to_spoken, truncate


def tone(seconds: float = 2.0, rate: int = 22050) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


@pytest.mark.parametrize(("fmt", "container", "subtype"), [("wav", "WAV", "PCM_16"), ("mp3", "MP3", None),
                                                           ("opus", "OGG", "OPUS")])
def test_encode_each_format_with_duration(fmt: str, container: str, subtype: str | None) -> None:
    data, duration = encode_pcm(tone(2.0), 22050, fmt)
    assert duration == pytest.approx(2.0)
    info = sf.info(io.BytesIO(data))
    assert info.format == container
    if subtype:
        assert info.subtype == subtype
    assert audio_duration(data) == pytest.approx(2.0, abs=0.08)


def test_opus_is_resampled_to_a_rate_it_accepts() -> None:
    data, _ = encode_pcm(tone(1.0), 22050, "opus")
    assert sf.info(io.BytesIO(data)).samplerate in (24000, 48000)


@pytest.mark.parametrize(("src", "dst"), [("wav", "mp3"), ("mp3", "opus"), ("opus", "wav"), ("wav", "opus")])
def test_convert_audio(src: str, dst: str) -> None:
    data, _ = encode_pcm(tone(1.5), 22050, src)
    converted, duration = convert_audio(data, src, dst)
    assert duration == pytest.approx(1.5, abs=0.08)
    assert audio_duration(converted) == pytest.approx(1.5, abs=0.08)
    expected = {"wav": "WAV", "mp3": "MP3", "opus": "OGG"}[dst]
    assert sf.info(io.BytesIO(converted)).format == expected


def test_convert_same_format_is_untouched_and_bad_input_raises() -> None:
    data, _ = encode_pcm(tone(0.5), 22050, "mp3")
    assert convert_audio(data, "mp3", "mp3")[0] is data
    with pytest.raises(ValueError):
        convert_audio(b"not audio at all", "mp3", "wav")
    with pytest.raises(ValueError):
        convert_audio(data, "mp3", "flac")


def test_to_spoken_removes_markdown_lists_and_openers() -> None:
    raw = "## Overview\nThis image shows a **red** bicycle.\n\n- leaning on a wall\n- next to a [door](http://x)\n"
    spoken = to_spoken(raw)
    assert spoken == "Overview. A red bicycle. Leaning on a wall. Next to a door."
    assert to_spoken("The photo depicts two dogs playing.") == "Two dogs playing."
    assert "*" not in to_spoken("*Italic* and `code`")


def test_split_sentences_and_long_sentences() -> None:
    text = "A cat sits. It looks left! Is it asleep? No."
    assert split_sentences(text) == ["A cat sits.", "It looks left!", "Is it asleep?", "No."]
    long = ", ".join(["a very long clause about the scene"] * 30) + "."
    parts = split_sentences(long, max_chars=120)
    assert all(len(p) <= 120 for p in parts) and len(parts) > 3
    assert " ".join(parts).replace("  ", " ") == long


def test_truncate_at_a_word_boundary() -> None:
    text = "word " * 60
    out = truncate(text, 125)
    assert len(out) <= 125 and out.endswith("word.")
