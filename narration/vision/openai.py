"""Vision through an OpenAI-compatible chat completions endpoint, the photo sent as a base64 data URL."""

from __future__ import annotations

import base64
import io

from PIL import Image

from narration.errors import EngineError
from narration.image import PreparedImage
from narration.openai_client import OpenAIProvider, translate
from narration.options import ALT_TEXT_MAX_CHARS, EngineConfig, NarrationOptions
from narration.prompts import image_detail, vision_prompt
from narration.text import to_spoken, truncate
from narration.vision.base import Report

LOW_DETAIL_SIDE = 512  # what the API looks at for detail "low"; sending more only costs upload time
JPEG_QUALITY = 85


def data_url(image: Image.Image, max_side: int | None = None) -> str:
    """The picture as a JPEG data URL, shrunk to max_side if given."""
    if max_side and max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")


class OpenAIVisionProvider(OpenAIProvider):
    name = "openai"

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self.model = config.openai_vision_model

    async def describe(self, image: PreparedImage, options: NarrationOptions, report: Report) -> str:
        import openai

        system, instruction = vision_prompt(options)
        detail = image_detail(options)
        url = data_url(image.model_image, LOW_DETAIL_SIDE if detail == "low" else None)
        report(10, "asking the vision model")
        try:
            response = await self.client().chat.completions.create(
                model=self.model,
                messages=[
                    {"role": "system", "content": system},
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": instruction},
                            {"type": "image_url", "image_url": {"url": url, "detail": detail}},
                        ],
                    },
                ],
            )
        except openai.OpenAIError as exc:
            raise translate(exc, "the vision request") from exc
        content = response.choices[0].message.content if response.choices else None
        text = to_spoken(content or "")
        if not text:
            raise EngineError("ENGINE_FAILED", "the vision model returned no description")
        if options.mode == "alt_text":
            text = truncate(text, ALT_TEXT_MAX_CHARS)
        report(100, "description ready")
        return text
