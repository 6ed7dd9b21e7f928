"""The OpenAI chat-completions schema as the captioner speaks it, and the error body every failure gets.

A request's last user message carries exactly one video and optionally text (the prompt)::

    {"model": "synpo-captioner", "max_tokens": 200, "temperature": 0, "n": 1, "seed": 7,
     "messages": [{"role": "user", "content": [
         {"type": "video_url", "video_url": {"url": "https://.../clip.mp4"}},
         {"type": "text", "text": "Describe the video in detail."}]}]}

``temperature`` 0 (the default here) is greedy decoding; ``n`` > 1 needs a temperature above 0.
Fields the captioner has no use for (``tools``, ``logit_bias``, ...) are refused by name rather than
ignored, so a client never believes they took effect; ``stream`` is refused too (no streaming yet).
"""

from __future__ import annotations

import time
import uuid
from typing import Literal

import pydantic

from synpo.serving.captioner import ApiError

UNSUPPORTED = ("stream", "tools", "tool_choice", "functions", "function_call", "logit_bias", "logprobs", "top_logprobs", "response_format", "audio", "modalities")


class VideoURL(pydantic.BaseModel):
    url: str = pydantic.Field(min_length=1)


class ContentPart(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore")

    type: Literal["text", "video_url", "image_url", "input_audio", "file"]
    text: str | None = None
    video_url: VideoURL | None = None


class Message(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None


class ChatRequest(pydantic.BaseModel):
    """The chat-completions fields the captioner honours (others: see :data:`UNSUPPORTED`)."""

    model_config = pydantic.ConfigDict(extra="allow")

    model: str = pydantic.Field(min_length=1)
    messages: list[Message] = pydantic.Field(min_length=1)
    temperature: float = pydantic.Field(default=0.0, ge=0, le=2)
    top_p: float = pydantic.Field(default=1.0, gt=0, le=1)
    n: int = pydantic.Field(default=1, ge=1)
    seed: int | None = None
    max_tokens: int | None = pydantic.Field(default=None, ge=1)
    max_completion_tokens: int | None = pydantic.Field(default=None, ge=1)
    user: str | None = None

    def unsupported_fields(self) -> list[str]:
        extra = self.model_extra or {}
        return [name for name in UNSUPPORTED if extra.get(name) not in (None, False)]


def video_and_prompt(request: ChatRequest) -> tuple[str, str | None]:
    """The one video URL and the prompt text (None: use the default) of the request's last user message."""
    users = [message for message in request.messages if message.role == "user"]
    if not users:
        raise ApiError(400, "messages: no user message; the last user message must carry the video", param="messages")
    content = users[-1].content
    parts = [ContentPart(type="text", text=content)] if isinstance(content, str) else list(content or [])
    videos = [part.video_url.url for part in parts if part.type == "video_url" and part.video_url is not None]
    other = sorted({part.type for part in parts if part.type not in ("text", "video_url")})
    if other:
        raise ApiError(400, f"messages: content parts of type {', '.join(other)} are not supported; send one video_url (and text)", param="messages")
    if len(videos) != 1:
        raise ApiError(400, f"messages: the last user message must carry exactly one video_url part, found {len(videos)}", param="messages")
    text = "\n".join(part.text for part in parts if part.type == "text" and part.text and part.text.strip()).strip()
    return videos[0], text or None


def completion_body(name: str, texts: list[tuple[str, str]], prompt_tokens: int, completion_tokens: int, fingerprint: str) -> dict:
    """A ``chat.completion`` object: ``texts`` holds ``(text, finish_reason)`` per choice."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": name,
        "system_fingerprint": fingerprint,
        "choices": [
            {"index": index, "message": {"role": "assistant", "content": text}, "finish_reason": reason, "logprobs": None}
            for index, (text, reason) in enumerate(texts)
        ],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
    }


def error_body(message: str, error_type: str, param: str | None = None, code: str | None = None) -> dict:
    """OpenAI's error object: what the ``openai`` package raises its ``APIStatusError`` subclasses from."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}
