"""The base class every job config derives from."""

from __future__ import annotations

import pydantic


class StrictModel(pydantic.BaseModel):
    """A config section: unknown keys are errors, every field has help text, and it is never changed once
    validated (frozen: assigning a field raises; derive a changed copy with ``model_copy(update=...)``)."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)
