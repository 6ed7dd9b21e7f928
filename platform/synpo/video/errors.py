"""The one error type every video problem raises."""

from __future__ import annotations

from synpo.errors import UserError


class VideoError(UserError, ValueError):
    """A video that cannot be used. ``str(error)`` names the file and says what is wrong."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(f"{uri}: {reason}")
        self.uri = uri
        self.reason = reason
