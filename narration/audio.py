"""Audio out: WAV (16-bit PCM), MP3 and Ogg/Opus through libsndfile, always with the duration known."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf
import soxr

from narration.errors import EngineError

CONTENT_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "opus": "audio/ogg"}
EXTENSIONS = {"wav": "wav", "mp3": "mp3", "opus": "opus"}
_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)  # the only rates the Opus encoder takes
_MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
# libsndfile's MP3 quality knob: 0 is best. 0.5 is about 64 kbit/s VBR at 22 kHz mono: clear speech, small files.
_MP3_COMPRESSION = 0.5


def _check_format(fmt: str) -> str:
    fmt = fmt.lower()
    if fmt not in CONTENT_TYPES:
        raise ValueError(f"audio format must be one of {', '.join(CONTENT_TYPES)}, not {fmt!r}")
    return fmt


def encode_pcm(samples: np.ndarray, sample_rate: int, fmt: str) -> tuple[bytes, float]:
    """Encode float samples in [-1, 1] (mono, or frames x channels) as `fmt`; returns (bytes, seconds)."""
    fmt = _check_format(fmt)
    samples = np.asarray(samples, dtype=np.float32)
    if samples.shape[0] == 0:
        raise ValueError("no audio samples to encode")
    duration = samples.shape[0] / sample_rate
    rate = sample_rate
    if fmt == "opus" and rate not in _OPUS_RATES:
        rate = next((r for r in _OPUS_RATES if r >= sample_rate), 48000)
    elif fmt == "mp3" and rate not in _MP3_RATES:
        rate = next((r for r in _MP3_RATES if r >= sample_rate), 48000)
    if rate != sample_rate:
        samples = soxr.resample(samples, sample_rate, rate, quality="HQ")
    out = io.BytesIO()
    try:
        if fmt == "wav":
            sf.write(out, samples, rate, format="WAV", subtype="PCM_16")
        elif fmt == "mp3":
            sf.write(out, samples, rate, format="MP3", subtype="MPEG_LAYER_III",
                     bitrate_mode="VARIABLE", compression_level=_MP3_COMPRESSION)
        else:
            sf.write(out, samples, rate, format="OGG", subtype="OPUS")
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise EngineError("ENGINE_FAILED", f"could not encode {fmt} audio: {exc}") from exc
    return out.getvalue(), duration


def decode_audio(data: bytes) -> tuple[np.ndarray, int]:
    """Decode WAV, MP3 or Ogg (Opus/Vorbis) bytes to float32 frames x channels and the sample rate."""
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"not decodable audio: {exc}") from exc
    return samples, int(rate)


def audio_duration(data: bytes) -> float:
    """Seconds of audio in WAV, MP3 or Ogg bytes (decodes, since MP3 headers may not say)."""
    samples, rate = decode_audio(data)
    return samples.shape[0] / rate


def convert_audio(data: bytes, src_format: str, dst_format: str) -> tuple[bytes, float]:
    """Re-encode audio between wav, mp3 and opus; returns (bytes, duration in seconds).

    The source is decoded from its content (`src_format` is checked, not trusted). Same format in
    and out returns the input untouched.
    """
    src = _check_format(src_format)
    dst = _check_format(dst_format)
    samples, rate = decode_audio(data)
    if samples.shape[0] == 0:
        raise ValueError("the audio is empty")
    if src == dst:
        return data, samples.shape[0] / rate
    return encode_pcm(samples if samples.shape[1] > 1 else samples[:, 0], rate, dst)
