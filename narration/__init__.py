"""The narration engine: photo in, spoken explanation out. Knows nothing of web, database or queues.

    engine = Engine.shared(EngineConfig())
    result = await engine.narrate(photo_bytes, NarrationOptions(detail="brief", audio_format="mp3"))
"""

from narration.audio import convert_audio
from narration.errors import EngineError, ImageError, InvalidOptions, NarrationError
from narration.image import PreparedImage, prepare_image
from narration.options import EngineConfig, NarrationOptions
from narration.pipeline import Engine, NarrationResult

__all__ = [
    "Engine",
    "EngineConfig",
    "EngineError",
    "ImageError",
    "InvalidOptions",
    "NarrationError",
    "NarrationOptions",
    "NarrationResult",
    "PreparedImage",
    "convert_audio",
    "prepare_image",
]
