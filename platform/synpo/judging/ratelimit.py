"""Async rate limits for the judge client: requests per second and tokens per minute.

- :class:`RequestPacer` spaces request starts at least ``1 / requests_per_s`` apart (no burst), so
  any one-second window holds at most ``requests_per_s + 1`` starts (as the client sees them; the
  server sees them through the network's jitter).
- :class:`TokenBucket` holds up to ``tokens_per_min`` tokens, refilled continuously at
  ``tokens_per_min / 60`` per second. A call reserves its estimated tokens before it is sent
  (:meth:`TokenBucket.take`) and gets back the difference once the server reports its real usage
  (:meth:`TokenBucket.refund`). Waiters are served first come, first served.

Both only ``await asyncio.sleep``: they never block the event loop.
"""

from __future__ import annotations

import asyncio
import time


class RequestPacer:
    """At most ``requests_per_s`` request starts per second, evenly spaced."""

    def __init__(self, requests_per_s: float) -> None:
        self.interval_s = 1.0 / requests_per_s
        self._next_start = 0.0
        self._lock: asyncio.Lock | None = None  # created on first use, inside the running loop

    async def wait(self) -> None:
        """Return when the next request may start: ``interval_s`` after the previous caller actually
        resumed (not after its scheduled time), so a stalled event loop cannot release a burst."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # first come, first served
            delay_s = self._next_start - time.monotonic()
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            self._next_start = time.monotonic() + self.interval_s


class TokenBucket:
    """A token budget of ``tokens_per_min`` per minute, reserved before a call and settled after it."""

    def __init__(self, tokens_per_min: int) -> None:
        self.capacity = float(tokens_per_min)
        self.rate_per_s = tokens_per_min / 60.0
        self._level = self.capacity
        self._updated = time.monotonic()
        self._lock: asyncio.Lock | None = None  # created on first use, inside the running loop
        self._refunded: asyncio.Event | None = None

    def _refill(self) -> None:
        now = time.monotonic()
        self._level = min(self.capacity, self._level + (now - self._updated) * self.rate_per_s)
        self._updated = now

    async def take(self, tokens: int) -> int:
        """Wait until ``tokens`` (capped at the bucket size) are available and take them; returns what was taken."""
        wanted = min(float(tokens), self.capacity)
        if self._lock is None or self._refunded is None:
            self._lock, self._refunded = asyncio.Lock(), asyncio.Event()
        async with self._lock:  # first come, first served
            self._refill()
            while self._level < wanted:
                self._refunded.clear()
                # wake up when enough has refilled by time, or earlier when a call gives tokens back
                refund = asyncio.ensure_future(self._refunded.wait())
                await asyncio.wait({refund}, timeout=(wanted - self._level) / self.rate_per_s)
                refund.cancel()
                self._refill()
            self._level -= wanted
        return int(wanted)

    def refund(self, tokens: int) -> None:
        """Give back ``tokens`` reserved but not used (negative = charge more than was reserved)."""
        self._refill()
        self._level = min(self.capacity, self._level + tokens)
        if tokens > 0 and self._refunded is not None:
            self._refunded.set()
