"""Stop a run whose judge is failing, instead of finishing it as a silent success with no pairs.

A judge call fails only after its retries (see :mod:`synpo.judging.client`), so a high share of
failed calls means the endpoint is down, the key is wrong or the model cannot answer in the format
asked for. :func:`check_failure_rate` raises :class:`JudgeUnavailable` once more than
``max_failed_fraction`` of the calls made so far failed: during a run only after
:data:`MIN_CALLS_TO_JUDGE` calls (one unlucky video does not stop a run), at its end on any count.
The message names the endpoint and the first error. Answers already received stay in the cache and
what was written stays resumable: the caller stops, it does not throw work away.
"""

from __future__ import annotations

from synpo.errors import UserError
from synpo.judging.config import JudgeConfig

MIN_CALLS_TO_JUDGE = 20


class JudgeUnavailable(UserError):
    """Too many judge calls failed; the message names the endpoint and the first error."""


def check_failure_rate(config: JudgeConfig, calls: int, failed_calls: int, first_error: str | None, final: bool) -> None:
    """Raise :class:`JudgeUnavailable` if ``failed_calls / calls`` exceeds ``config.max_failed_fraction``.

    ``final=False`` (mid-run) waits for :data:`MIN_CALLS_TO_JUDGE` calls; ``final=True`` (the run is over) judges any count."""
    if calls == 0 or (not final and calls < MIN_CALLS_TO_JUDGE):
        return
    if failed_calls / calls > config.max_failed_fraction:
        raise JudgeUnavailable(
            f"judge {config.model!r} at {config.base_url} failed {failed_calls} of {calls} calls "
            f"({failed_calls / calls:.0%} > judge.max_failed_fraction {config.max_failed_fraction:.0%}); "
            f"first error: {first_error or 'unknown'}. Answers received are cached: fix the judge and rerun to continue"
        )
