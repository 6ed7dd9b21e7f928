"""The base class every job config derives from."""

from __future__ import annotations

import pydantic


class StrictModel(pydantic.BaseModel):
    """A config section: unknown keys are errors, assignments are validated, every field has help text."""

    model_config = pydantic.ConfigDict(extra="forbid", validate_assignment=True, frozen=False)
