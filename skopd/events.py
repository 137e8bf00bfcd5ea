"""The event bus: events are stored with a per-job sequence number, then fanned out.

A flush of a job's recorder commits a batch of events and publishes it here at once; every
subscriber gets the batch as one pre-encoded block, so a thousand watchers cost a thousand
writes per flush, not a thousand encodings per event. Queues are bounded: a subscriber that
falls behind is dropped, and resumes from the store with `Last-Event-ID`.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Sequence
from datetime import datetime

import msgspec

SUBSCRIBER_QUEUE = 1024  # batches waiting while a stream replays the store
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

    decision: str  # downloaded, too_large, below_threshold, duplicate, failed, disallowed
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


Sink = Callable[[bytes], bool]  # writes a block to the client now; False: the client is gone


class Subscription:
    """One stream's place on the bus. While the stream replays the store, batches wait in a
    bounded queue; once it is live, each batch is written to the client's socket right in
    `publish`, so a thousand subscribers cost a thousand buffered writes per flush and no
    task switches. A client whose unsent data passes a bound is cut off: it resumes from the
    store with Last-Event-ID."""

    def __init__(self, key: str, size: int = SUBSCRIBER_QUEUE) -> None:
        self.key = key
        self.dropped = False
        self.last = 0
        self._waiting: collections.deque[Batch] = collections.deque()
        self._size = size
        self._sink: Sink | None = None
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def offer(self, batch: Batch) -> None:
        if self.ended.done():
            return
        if self._sink is None:
            if len(self._waiting) >= self._size:
                self.end(dropped=True)
            else:
                self._waiting.append(batch)
            return
        self._deliver(batch, self._sink)

    def go_live(self, sink: Sink, last: int) -> None:
        """After the replay up to `last`: send what queued meanwhile, then every batch at once."""
        self.last = last
        while self._waiting and not self.ended.done():
            self._deliver(self._waiting.popleft(), sink)
        self._sink = sink

    def _deliver(self, batch: Batch, sink: Sink) -> None:
        if batch.last_seq and batch.last_seq <= self.last:
            return  # a batch is committed whole: the replay had all of it
        if not sink(batch.payload):
            self.end(dropped=True)
            return
        self.last = batch.last_seq or self.last
        if batch.done:
            self.end()

    def end(self, dropped: bool = False) -> None:
        self.dropped = self.dropped or dropped
        self._waiting.clear()
        self._sink = None
        if not self.ended.done():
            self.ended.set_result(None)


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
