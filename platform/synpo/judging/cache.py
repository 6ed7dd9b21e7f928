"""A persistent cache of judge answers, so a rerun never pays for the same judgement twice.

Key: sha256 of (prompt version, judge model, criterion, the exact inputs of the call). Only
successful answers are stored; a failed call is asked again on the next run.

On storage (local path, ``file://`` or ``s3://``) the cache is a folder of JSONL *shards*, one
answer per line. Opening the cache reads every shard; :meth:`JudgementCache.flush` writes the
answers added since the last flush as a NEW shard (one atomic write — S3 cannot append) named
``judgements-<UTC time>-<uuid>.jsonl``, so several writers (Ray actors, reruns) can share one
folder without overwriting each other. With ``uri=None`` the cache lives in memory only.

A process can die at any time (SIGKILL, a lost node), so :meth:`JudgementCache.put` also flushes
by itself once ``flush_every_answers`` answers are pending or ``flush_every_s`` seconds have passed
since the last flush: a killed run loses at most that much of what it paid for.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from datetime import UTC, datetime

from synpo.errors import UserError
from synpo.jsonl import jsonl_objects
from synpo.storage import ObjectNotFound, Storage, join_uri


class CacheError(UserError, ValueError):
    """A cache shard that cannot be read; names the shard and the line."""


def cache_key(prompt_version: str, judge_model: str, criterion: str, inputs: dict) -> str:
    """sha256 over the canonical JSON of everything that determines the answer."""
    canonical = json.dumps([prompt_version, judge_model, criterion, inputs], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class JudgementCache:
    """Answers by key, loaded from the shards under ``uri``; new answers are written by :meth:`flush`."""

    def __init__(
        self, uri: str | None = None, storage: Storage | None = None, flush_every_answers: int = 50, flush_every_s: float = 10.0
    ) -> None:
        self.uri = uri
        self.storage = storage or Storage()
        self.flush_every_answers = flush_every_answers
        self.flush_every_s = flush_every_s
        self._entries: dict[str, dict] = {}
        self._pending: dict[str, dict] = {}
        self._last_flush = time.monotonic()
        if uri is not None:
            self.load()

    def __len__(self) -> int:
        return len(self._entries)

    def load(self) -> int:
        """Read every shard under ``uri`` (also picks up other writers' shards); returns the number of answers."""
        if self.uri is None:
            return len(self._entries)
        try:
            shards = self.storage.list(self.uri, suffixes=(".jsonl",))
        except ObjectNotFound:  # no folder yet: an empty cache, created by the first flush
            shards = []
        for shard in shards:
            for number, entry in jsonl_objects(self.storage.read_text(shard), f"judge cache shard {shard}", CacheError):
                if "key" not in entry:
                    raise CacheError(f"judge cache shard {shard}: line {number} is not a cache entry (no 'key')")
                self._entries[entry["key"]] = entry
        return len(self._entries)

    def get(self, key: str) -> dict | None:
        return self._entries.get(key)

    def put(self, key: str, entry: dict) -> None:
        """Remember ``entry`` (a JSON-serialisable answer) under ``key``; persisted by the next :meth:`flush`,
        which this call makes itself when ``flush_every_answers`` are pending or ``flush_every_s`` have passed."""
        stored = {"key": key, **entry}
        self._entries[key] = stored
        self._pending[key] = stored
        if len(self._pending) >= self.flush_every_answers or time.monotonic() - self._last_flush >= self.flush_every_s:
            self.flush()

    def flush(self) -> str | None:
        """Write the answers added since the last flush as a new shard; returns its URI (``None`` if nothing to write)."""
        self._last_flush = time.monotonic()
        if self.uri is None or not self._pending:
            return None
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        shard = join_uri(self.uri, f"judgements-{stamp}-{uuid.uuid4().hex[:12]}.jsonl")
        text = "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in self._pending.values())
        self.storage.write_text(shard, text)
        self._pending.clear()
        return shard
