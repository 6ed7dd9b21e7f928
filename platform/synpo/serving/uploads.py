"""``POST /v1/captions``: a JSON body naming a video URL, or a multipart form carrying the video itself.

    curl -H 'Authorization: Bearer $TOKEN' -F video=@clip.mp4 -F prompt='Describe the video.' http://HOST:8000/v1/captions
    curl -H 'Content-Type: application/json' -d '{"video_url": "https://.../clip.mp4"}' http://HOST:8000/v1/captions

Form fields and JSON keys are the same: ``video_url`` or (multipart only) the file ``video``,
``model`` (a variant's name; default: the main model), ``prompt``, ``max_new_tokens``, ``temperature``, ``seed`` and ``mode`` (plain, retrospective,
contrastive, both). An upload is refused from its ``Content-Length`` before it is read when that
already exceeds the size cap, and again after reading at most one byte past the cap.
"""

from __future__ import annotations

from typing import Literal

import pydantic
from fastapi import Request
from starlette.datastructures import UploadFile

from synpo.serving.captioner import ApiError

MULTIPART_OVERHEAD = 64 * 1024  # form boundaries and the text fields, on top of the video itself


class CaptionForm(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    model: str | None = pydantic.Field(default=None, min_length=1)  # the main model when absent
    video_url: str | None = pydantic.Field(default=None, min_length=1)
    upload: bytes | None = None
    prompt: str | None = None
    max_new_tokens: int | None = pydantic.Field(default=None, ge=1)
    temperature: float = pydantic.Field(default=0.0, ge=0, le=2)
    seed: int | None = None
    mode: Literal["plain", "retrospective", "contrastive", "both"] = "plain"


def _validated(fields: dict) -> CaptionForm:
    try:
        form = CaptionForm.model_validate(fields)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise ApiError(400, f"{where}: {first['msg']}", param=where) from None
    if (form.video_url is None) == (form.upload is None):
        raise ApiError(400, "give the video either as video_url or as an uploaded file field 'video', not both or neither", param="video")
    return form


async def read_caption_request(request: Request, max_bytes: int) -> CaptionForm:
    """The request's fields, checked; 400 for a body that is neither JSON nor a form, 413 for an oversize upload."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            fields = await request.json()
        except ValueError as error:
            raise ApiError(400, f"the body is not valid JSON: {error}") from None
        if not isinstance(fields, dict) or "upload" in fields:
            raise ApiError(400, "the JSON body must be an object with video_url (uploads go in a multipart form)")
        return _validated(fields)
    if content_type != "multipart/form-data":
        raise ApiError(415, f"Content-Type {content_type or 'none'!r}: send application/json or multipart/form-data", "invalid_request_error")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes + MULTIPART_OVERHEAD:
        raise ApiError(413, f"the upload is {declared} bytes, over the limit of {max_bytes} bytes")
    async with request.form(max_files=1, max_fields=16) as form:
        fields: dict = {key: value for key, value in form.items() if not isinstance(value, UploadFile)}
        video = form.get("video")
        if isinstance(video, UploadFile):
            data = await video.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise ApiError(413, f"the uploaded video is over the limit of {max_bytes} bytes")
            fields["upload"] = data
        elif video is not None:
            raise ApiError(400, "the form field 'video' must be a file (curl -F video=@clip.mp4), not text", param="video")
    fields.pop("video", None)
    return _validated(fields)
