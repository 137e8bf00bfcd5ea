"""The event bus: events are stored with a per-job sequence number, then fanned out.

A flush of a job's recorder commits a batch of events and publishes it here at once; every
subscriber gets the batch as one pre-encoded block, so a thousand watchers cost a thousand
writes per flush, not a thousand encodings per event. Queues are bounded: a subscriber that
falls behind is dropped, and resumes from the store with `Last-Event-ID`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

import msgspec

SUBSCRIBER_QUEUE = 256  # batches; at 10 flushes a second, ~25 s of lag before a drop
_JSON = msgspec.json.Encoder()


class Event(msgspec.Struct, frozen=True):
    seq: int
    name: str  # status, page, document, warning, error, done
    data: bytes  # JSON
    frame: bytes  # the SSE frame, encoded once: stored, replayed and fanned out as is


def make_event(seq: int, name: str, value: object) -> Event:
    data = _JSON.encode(value)
    return Event(seq, name, data, b"id: %d\nevent: %s\ndata: %s\n\n" % (seq, name.encode(), data))


class PageEvent(msgspec.Struct):
    url: str
    status: int | None
    depth: int
    links: int
    elapsed_ms: int
    fetched_at: datetime


class DocumentEvent(msgspec.Struct):
    """A candidate was decided; the file fields are null unless it was downloaded."""

    decision: str  # downloaded, too_large, below_threshold, duplicate, failed
    document_id: str | None
    name: str
    url: str
    source_page: str
    document_type: str
    confidence_score: float
    file_size_mb: float | None
    extracted_at: datetime
    sha256: str | None
    download_url: str | None


class WarningEvent(msgspec.Struct):
    message: str


def encode(value: object) -> bytes:
    return _JSON.encode(value)


def status_frame(data: bytes) -> bytes:
    """A status event without an id, for the all-jobs stream (ids are per job)."""
    return b"event: status\ndata: " + data + b"\n\n"


class Batch(msgspec.Struct, frozen=True):
    last_seq: int
    payload: bytes  # SSE frames, ready to write
    done: bool = False  # holds the job's last event


class Subscription:
    def __init__(self, key: str, size: int = SUBSCRIBER_QUEUE) -> None:
        self.key = key
        self.queue: asyncio.Queue[Batch | None] = asyncio.Queue(size)
        self.dropped = False

    def offer(self, batch: Batch) -> None:
        if self.dropped:
            return
        try:
            self.queue.put_nowait(batch)
        except asyncio.QueueFull:
            self.end(dropped=True)

    def end(self, dropped: bool = False) -> None:
        """Wake the reader with the end marker; what was queued is discarded."""
        self.dropped = self.dropped or dropped
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)

    async def next(self) -> Batch | None:
        return await self.queue.get()

    def drain(self) -> list[Batch | None]:
        items: list[Batch | None] = []
        while not self.queue.empty():
            items.append(self.queue.get_nowait())
        return items


class EventBus:
    def __init__(self) -> None:
        self._jobs: dict[str, set[Subscription]] = {}
        self._owners: dict[str, set[Subscription]] = {}
        self._closed = False

    def subscribe_job(self, job_id: str) -> Subscription:
        return self._add(self._jobs, job_id)

    def subscribe_owner(self, owner: str) -> Subscription:
        return self._add(self._owners, owner)

    def _add(self, table: dict[str, set[Subscription]], key: str) -> Subscription:
        sub = Subscription(key)
        if self._closed:
            sub.end()
        else:
            table.setdefault(key, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        for table in (self._jobs, self._owners):
            subs = table.get(sub.key)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del table[sub.key]

    def publish(self, job_id: str, owner: str, events: Sequence[Event]) -> None:
        """Called right after the events were committed to the store."""
        if not events:
            return
        subs = self._jobs.get(job_id)
        if subs:
            batch = Batch(
                events[-1].seq,
                b"".join(e.frame for e in events),
                done=events[-1].name == "done",
            )
            for sub in list(subs):
                sub.offer(batch)
        watchers = self._owners.get(owner)
        if watchers:
            statuses = [e for e in events if e.name in ("status", "done")]
            if statuses:
                # The all-jobs stream carries status objects only, and no ids (they are per job).
                last = statuses[-1]
                batch = Batch(0, status_frame(last.data))
                for sub in list(watchers):
                    sub.offer(batch)

    def subscribers(self) -> int:
        return sum(len(s) for s in self._jobs.values()) + sum(len(s) for s in self._owners.values())

    def close(self) -> None:
        """End every subscription (daemon shutdown): streams must not hold shutdown up."""
        self._closed = True
        for table in (self._jobs, self._owners):
            for subs in table.values():
                for sub in subs:
                    sub.end()
