"""OpenAI-compatible providers against a local server speaking the OpenAI wire format (and live, with a key)."""

from __future__ import annotations

import base64
import io
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from PIL import Image

from narration import Engine, EngineConfig, EngineError, NarrationOptions
from narration.audio import CONTENT_TYPES, audio_duration, encode_pcm
from narration.speech.openai import OpenAISpeechProvider
from tests.narration import photos

REPLY = "This image shows a **red** bicycle.\n\n- leaning on a wall\n- next to a green door"


@dataclass
class FakeOpenAI:
    """Records every request; answers chat completions and audio/speech like the real API."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_with: int | None = None
    reply: str = REPLY
    url: str = ""
    served: dict[str, bytes] = field(default_factory=dict)

    def audio(self, fmt: str) -> bytes:
        """One second of tone in `fmt`; the same bytes every time (Ogg streams carry a random serial)."""
        if fmt not in self.served:
            tone = (0.2 * np.sin(np.arange(24000) / 24000 * 2 * np.pi * 200)).astype(np.float32)
            self.served[fmt] = encode_pcm(tone, 24000, fmt)[0]
        return self.served[fmt]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
            if fake.fail_with:
                error = {"message": "Incorrect API key provided", "type": "invalid_request_error",
                         "code": "invalid_api_key"}
                payload = json.dumps({"error": error}).encode()
                self.send_response(fake.fail_with)
                self.send_header("Content-Type", "application/json")
            elif self.path.endswith("/chat/completions"):
                payload = json.dumps({
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": fake.reply}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
            elif self.path.endswith("/audio/speech"):
                fmt = body.get("response_format", "mp3")
                payload = fake.audio(fmt)
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPES.get(fmt, "audio/mpeg"))
            else:
                payload = b"{}"
                self.send_response(404)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    yield fake
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _reset(server: FakeOpenAI) -> None:
    server.requests.clear()
    server.fail_with = None
    server.reply = REPLY


def engine_for(server: FakeOpenAI, speech_model: str = "gpt-4o-mini-tts") -> Engine:
    return Engine(EngineConfig(vision_provider="openai", speech_provider="openai", openai_base_url=server.url,
                               openai_api_key="sk-test-key", openai_vision_model="gpt-4o-mini",
                               openai_speech_model=speech_model))


def calls(server: FakeOpenAI, suffix: str) -> list[dict[str, Any]]:
    return [r for r in server.requests if r["path"].endswith(suffix)]


async def test_exact_requests(server: FakeOpenAI) -> None:
    photo = photos.encode(photos.shapes(), "PNG")
    options = NarrationOptions(detail="detailed", language="fr", voice="nova", speed=1.5, audio_format="opus")
    result = await engine_for(server).narrate(photo, options)

    [chat] = calls(server, "/v1/chat/completions")
    assert chat["auth"] == "Bearer sk-test-key"
    body = chat["body"]
    assert body["model"] == "gpt-4o-mini"
    system, user = body["messages"]
    assert system["role"] == "system" and "no markdown" in system["content"]
    text_part, image_part = user["content"]
    assert "French" in text_part["text"] and "paragraphs" in text_part["text"]
    assert image_part["type"] == "image_url" and image_part["image_url"]["detail"] == "high"
    url = image_part["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    sent = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert sent.format == "JPEG" and sent.size == (800, 600)

    [speech] = calls(server, "/v1/audio/speech")
    assert speech["body"] == {
        "model": "gpt-4o-mini-tts", "voice": "nova", "speed": 1.5, "response_format": "opus",
        "input": result.text, "instructions": speech["body"]["instructions"],
    }
    assert "French" in speech["body"]["instructions"]

    assert result.text == "A red bicycle. Leaning on a wall. Next to a green door."  # spoken prose, no markdown
    assert result.vision_provider == "openai" and result.speech_provider == "openai"
    assert result.audio == server.audio("opus") and result.content_type == "audio/ogg"
    assert result.duration_seconds == pytest.approx(1.0, abs=0.05)
    assert result.language == "fr"


async def test_brief_and_alt_text_ask_for_low_detail(server: FakeOpenAI) -> None:
    server.reply = "A red bicycle leaning against a weathered brick wall beside a green wooden door " * 3
    photo = photos.encode(photos.noise_photo(1600, 1200), "JPEG")
    result = await engine_for(server).narrate(photo, NarrationOptions(mode="alt_text", audio_format="mp3"))
    [chat] = calls(server, "/chat/completions")
    image = chat["body"]["messages"][1]["content"][1]["image_url"]
    assert image["detail"] == "low"
    assert max(Image.open(io.BytesIO(base64.b64decode(image["url"].split(",", 1)[1]))).size) == 512
    assert len(result.text) <= 125
    assert "125 characters" in chat["body"]["messages"][1]["content"][0]["text"]


async def test_document_mode_prompt(server: FakeOpenAI) -> None:
    await engine_for(server).narrate(photos.encode(photos.document(), "PNG"), NarrationOptions(mode="document"))
    [chat] = calls(server, "/chat/completions")
    assert "Read the text aloud" in chat["body"]["messages"][1]["content"][0]["text"]
    assert chat["body"]["messages"][1]["content"][1]["image_url"]["detail"] == "high"


async def test_instructions_only_for_models_that_take_them(server: FakeOpenAI) -> None:
    result = await engine_for(server, speech_model="tts-1").narrate(
        photos.encode(photos.shapes(), "PNG"), NarrationOptions(audio_format="wav")
    )
    [speech] = calls(server, "/audio/speech")
    assert "instructions" not in speech["body"]
    assert speech["body"]["voice"] == "alloy" and speech["body"]["response_format"] == "wav"
    assert audio_duration(result.audio) == pytest.approx(1.0, abs=0.05)


async def test_long_text_is_split_and_joined(server: FakeOpenAI) -> None:
    provider = OpenAISpeechProvider(engine_for(server).config)
    text = " ".join(f"Sentence number {i} describes one more detail of the photo." for i in range(150))
    speech = await provider.speak(text, NarrationOptions(audio_format="mp3"), lambda p, m: None)
    requests = calls(server, "/audio/speech")
    assert len(requests) == 3 and all(len(r["body"]["input"]) <= 4000 for r in requests)
    assert " ".join(r["body"]["input"] for r in requests) == text
    assert speech.samples is not None and len(speech.samples) == pytest.approx(3 * 24000, rel=0.05)


async def test_errors_become_engine_errors_without_secrets(server: FakeOpenAI) -> None:
    server.fail_with = 401
    with pytest.raises(EngineError) as caught:
        await engine_for(server).narrate(photos.encode(photos.shapes(), "PNG"), NarrationOptions())
    assert caught.value.code == "ENGINE_FAILED"
    assert "HTTP 401" in caught.value.message and "sk-test-key" not in caught.value.message


async def test_unreachable_server() -> None:
    engine = Engine(EngineConfig(vision_provider="openai", openai_base_url="http://127.0.0.1:9/v1",
                                 openai_api_key="k", openai_timeout_seconds=2))
    engine.vision.client().max_retries = 0  # type: ignore[attr-defined]
    with pytest.raises(EngineError, match="could not connect"):
        await engine.narrate(photos.encode(photos.shapes(), "PNG"), NarrationOptions())


@pytest.mark.live
@pytest.mark.skipif(not os.environ.get("OPENAI_API_KEY"), reason="needs OPENAI_API_KEY")
async def test_live_openai() -> None:
    engine = Engine(EngineConfig(vision_provider="openai", speech_provider="openai",
                                 openai_base_url=os.environ.get("OPENAI_BASE_URL")))
    result = await engine.narrate(photos.encode(photos.sign("OPEN"), "PNG"),
                                  NarrationOptions(detail="brief", audio_format="mp3"))
    assert "open" in result.text.lower()
    assert result.duration_seconds > 0.5
