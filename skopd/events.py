"""The event bus: events are stored with a per-job sequence number, then fanned out.

A flush of a job's recorder commits a batch of events and publishes it here at once; every
subscriber gets the batch as one pre-encoded block (the same bytes object for all), so a
thousand watchers cost one message to the fan-out helper (skopd/fanout.py), which does the
thousand writes on another core, not a thousand encodings per event. A live job's recent
batches stay in a bounded ring, so streams that join or resume late replay from memory, not
the store. Queues are bounded: a subscriber that falls behind is dropped, and resumes with
`Last-Event-ID`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable, Sequence
from datetime import datetime

import msgspec

SUBSCRIBER_QUEUE = 1024  # batches waiting while a stream replays
RING_BYTES = 1 << 20  # recent frames kept in memory per live job, for streams that join late
FANOUT_INTERVAL_S = 0.1  # a job's live streams are written at most this often,
FANOUT_PER_STREAM_S = 50e-6  # plus this per stream: each write costs the helper ~20 µs of CPU
FANOUT_SHARE = 0.1  # and no more often than keeps handing them out under this share of time
FANOUT_MAX_INTERVAL_S = 0.5
CAUGHT_UP_WAIT_S = 1.0  # at most this for a commit's publish that is on its way (see caught_up)
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
    engine: str = "http"  # "http" or "browser" (rendered in Chromium)
    screenshot_url: str | None = None


class SkippedPageEvent(PageEvent):
    """A page not fetched: `skipped` says why ("disallowed": robots.txt); status is null."""

    skipped: str = "disallowed"


class DocumentEvent(msgspec.Struct):
    """A candidate was decided; the file fields are null unless it was downloaded."""

    decision: str  # downloaded, too_large, not_downloaded, below_threshold, duplicate, failed,
    # disallowed
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


def http_chunk(data: bytes) -> bytes:
    """`data` as one HTTP/1.1 chunk: streams are chunked, and live ones are written straight
    to the socket."""
    return b"%x\r\n%s\r\n" % (len(data), data)


class Batch:
    """Events published together (one flush), or one status frame for the all-jobs streams
    (`last_seq` 0). Built once per publish and shared by every subscriber."""

    __slots__ = ("_wire", "done", "first_seq", "last_seq", "offsets", "payload", "published")

    def __init__(
        self,
        last_seq: int,
        payload: bytes,
        done: bool = False,
        first_seq: int | None = None,
        offsets: Sequence[int] = (0,),
    ) -> None:
        self.first_seq = last_seq if first_seq is None else first_seq
        self.last_seq = last_seq
        self.payload = payload  # SSE frames, as stored
        self.offsets = offsets  # where each frame starts in payload (numbered batches)
        self.done = done  # holds the job's last event
        self.published = time.time()
        self._wire: bytes | None = None

    @classmethod
    def merge(cls, batches: Sequence[Batch]) -> Batch:
        """Consecutive batches as one (published when the first was)."""
        if len(batches) == 1:
            return batches[0]
        offsets: list[int] = []
        at = 0
        for b in batches:
            offsets.extend(at + o for o in b.offsets)
            at += len(b.payload)
        merged = cls(
            batches[-1].last_seq,
            b"".join(b.payload for b in batches),
            batches[-1].done,
            batches[0].first_seq,
            offsets,
        )
        merged.published = batches[0].published
        return merged

    @classmethod
    def of(cls, events: Sequence[Event]) -> Batch:
        offsets, at = [], 0
        for e in events:
            offsets.append(at)
            at += len(e.frame)
        return cls(
            events[-1].seq,
            b"".join(e.frame for e in events),
            events[-1].name == "done",
            events[0].seq,
            offsets,
        )

    def after(self, seq: int) -> bytes:
        """The frames of events after `seq`."""
        if seq < self.first_seq:
            return self.payload
        if seq >= self.last_seq:
            return b""
        return self.payload[self.offsets[seq + 1 - self.first_seq] :]

    @property
    def wire(self) -> bytes:
        """What a live stream is sent: the frames behind a `: published <unix time>` comment
        (EventSource skips it; it tells how late a client is), as one HTTP chunk. Built
        once, for all subscribers."""
        if self._wire is None:
            self._wire = self._chunk(self.payload)
        return self._wire

    def wire_after(self, seq: int) -> bytes:
        """`wire`, but only the frames after `seq`."""
        return self._chunk(self.after(seq))

    def _chunk(self, frames: bytes) -> bytes:
        return http_chunk(b": published %.3f\n%s" % (self.published, frames))


class Ring:
    """A live job's most recent batches, up to RING_BYTES: a stream that joins or resumes
    within them is served from memory instead of the store."""

    __slots__ = ("batches", "owner", "size")

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.batches: collections.deque[Batch] = collections.deque()
        self.size = 0

    def add(self, batch: Batch) -> None:
        if self.batches and batch.first_seq != self.batches[-1].last_seq + 1:
            self.batches.clear()  # never a gap inside the ring
            self.size = 0
        self.batches.append(batch)
        self.size += len(batch.payload)
        while self.size > RING_BYTES and len(self.batches) > 1:
            self.size -= len(self.batches.popleft().payload)

    def after(self, seq: int) -> tuple[bytes, int] | None:
        """(the frames after `seq`, the last id in them), or None if the ring does not reach
        back to `seq` + 1."""
        if not self.batches or seq + 1 < self.batches[0].first_seq:
            return None
        last = self.batches[-1].last_seq
        if seq >= last:
            return b"", seq
        parts = [b.after(seq) for b in self.batches if b.last_seq > seq]
        return b"".join(parts), last


Sink = Callable[[bytes], bool]  # writes bytes to the client now; False: the client is gone


class Subscription:
    """One stream's place on the bus. While the stream replays, batches wait in a bounded
    queue; once it is live, each batch goes to its sink right in the fan-out (the same bytes
    for everyone, which the fan-out helper groups into one message), with no task switches.
    A sink that refuses (the client is gone, or was cut off for taking too little) ends the
    subscription as dropped: the client resumes with Last-Event-ID."""

    def __init__(self, key: str, size: int = SUBSCRIBER_QUEUE) -> None:
        self.key = key
        self.dropped = False
        self.last = 0
        self._waiting: collections.deque[Batch] = collections.deque()
        self._size = size
        self._sink: Sink | None = None
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def offer(self, batch: Batch) -> None:
        if self._sink is not None:
            self._deliver(batch, self._sink)
        elif self.ended.done():
            return
        elif len(self._waiting) >= self._size:
            self.end(dropped=True)
        else:
            self._waiting.append(batch)

    def go_live(self, sink: Sink, last: int) -> None:
        """After the replay up to `last`: send what queued meanwhile, then every batch at once."""
        self.last = last
        while self._waiting and not self.ended.done():
            self._deliver(self._waiting.popleft(), sink)
        if not self.ended.done():
            self._sink = sink

    def _deliver(self, batch: Batch, sink: Sink) -> None:
        if not batch.last_seq or batch.first_seq > self.last:
            data = batch.wire
        elif batch.last_seq > self.last:  # the replay sent its start
            data = batch.wire_after(self.last)
        else:
            return  # the replay sent all of it
        if not sink(data):
            self.end(dropped=True)
            return
        if batch.last_seq:
            self.last = batch.last_seq
        if batch.done:
            self.end()

    def end(self, dropped: bool = False) -> None:
        self.dropped = self.dropped or dropped
        self._waiting.clear()
        self._sink = None
        if not self.ended.done():
            self.ended.set_result(None)


class _Outbox:
    """A job's batches published since its last fan-out, and readers waiting for them."""

    __slots__ = ("batches", "interval", "owner", "sent_at", "sent_seq", "timer", "waiters")

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.batches: list[Batch] = []
        self.sent_at = -FANOUT_MAX_INTERVAL_S
        self.sent_seq = 0  # the last event handed to the job's streams
        self.interval = FANOUT_INTERVAL_S
        self.timer: asyncio.TimerHandle | None = None
        self.waiters: list[tuple[int, asyncio.Future[None]]] = []  # (seq, until it is sent)

    def release(self, everyone: bool = False) -> None:
        """Wake the readers waiting for events that have gone out (or all of them)."""
        waiting = []
        for seq, fut in self.waiters:
            if everyone or seq <= self.sent_seq:
                if not fut.done():
                    fut.set_result(None)
            else:
                waiting.append((seq, fut))
        self.waiters = waiting


class EventBus:
    """Fans a job's batches out at most every FANOUT_INTERVAL_S (the first at once): a job
    may commit far more often (its crawl checkpoints before each request), and each fan-out
    costs a socket write per subscriber (in the fan-out helper), whatever it holds. So the
    interval grows with the job's streams (by FANOUT_PER_STREAM_S each: the helper's writes
    stay under about 40 % of a core, which on a small machine the crawl shares), and if
    handing a fan-out to the sinks takes this loop longer than FANOUT_SHARE of the interval,
    it stretches further (up to FANOUT_MAX_INTERVAL_S), so the crawl keeps the rest of its
    time."""

    def __init__(self) -> None:
        self._jobs: dict[str, set[Subscription]] = {}
        self._owners: dict[str, set[Subscription]] = {}
        self._rings: dict[str, Ring] = {}
        self._outboxes: dict[str, _Outbox] = {}
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
        batch = Batch.of(events)
        out = self._outboxes.get(job_id)
        if out is None:
            out = self._outboxes[job_id] = _Outbox(owner)
        out.batches.append(batch)
        loop = asyncio.get_running_loop()
        due = out.sent_at + out.interval
        if batch.done or loop.time() >= due:
            self._fan_out(job_id)
        elif out.waiters:
            self._hurry(job_id, out)
        elif out.timer is None:
            out.timer = loop.call_at(due, self._fan_out, job_id)
        watchers = self._owners.get(owner)
        if watchers:
            statuses = [e for e in events if e.name in ("status", "done")]
            if statuses:
                # The all-jobs stream carries status objects only, and no ids (they are per job).
                last = statuses[-1]
                batch = Batch(0, status_frame(last.data))
                for sub in list(watchers):
                    sub.offer(batch)

    def _fan_out(self, job_id: str) -> None:
        """Send what the job published since the last fan-out, as one batch, to its streams
        and its ring. A stream that subscribed meanwhile read the ring or the store first:
        it skips or slices what it already has (batches are consecutive)."""
        out = self._outboxes.get(job_id)
        if out is None:
            return
        if out.timer is not None:
            out.timer.cancel()
            out.timer = None
        if not out.batches:
            return
        batch = Batch.merge(out.batches)
        out.batches = []
        out.sent_at = asyncio.get_running_loop().time()
        out.sent_seq = batch.last_seq
        if not batch.done:
            ring = self._rings.get(job_id)
            if ring is None:
                ring = self._rings[job_id] = Ring(out.owner)
            ring.add(batch)
        subs = self._jobs.get(job_id)
        if subs:
            began = time.thread_time()  # CPU: waits for the GIL are not this loop's cost
            for sub in list(subs):
                sub.offer(batch)
            took = time.thread_time() - began
            least = FANOUT_INTERVAL_S + FANOUT_PER_STREAM_S * len(subs)
            out.interval = min(max(least, took / FANOUT_SHARE), FANOUT_MAX_INTERVAL_S)
        # After the streams were handed the batch: waiting readers go on.
        if batch.done:
            self._forget(job_id)  # ended: streams that join now replay the store
        else:
            out.release()

    async def caught_up(self, job_id: str, seq: int) -> None:
        """Return once the job's streams have been handed every event up to `seq` (its last
        committed event when a status or results read took its snapshot): such a read is
        answered only after that, so no stream has reported fewer documents than the read
        does. It hurries the job's pending fan-out instead of waiting for its interval, and
        waits only for a commit whose publish is on its way to the loop (the store's
        callback runs a moment after the commit that a read can already see). Reads never make
        a job's fan-outs more frequent than FANOUT_INTERVAL_S: a read waits up to that long.
        A job with no outbox here has nothing waiting: it ended, or it is not running in
        this process."""
        out = self._outboxes.get(job_id)
        if out is None or out.sent_seq >= seq:
            return
        fut = asyncio.get_running_loop().create_future()
        out.waiters.append((seq, fut))
        self._hurry(job_id, out)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(fut), CAUGHT_UP_WAIT_S)

    def _hurry(self, job_id: str, out: _Outbox) -> None:
        """Fan out as soon as FANOUT_INTERVAL_S allows (a reader waits), not at the job's
        own interval, which may have stretched with its streams."""
        loop = asyncio.get_running_loop()
        soonest = out.sent_at + FANOUT_INTERVAL_S
        if loop.time() >= soonest:
            self._fan_out(job_id)
        elif out.timer is None or out.timer.when() > soonest:
            if out.timer is not None:
                out.timer.cancel()
            out.timer = loop.call_at(soonest, self._fan_out, job_id)

    def job_ended(self, job_id: str) -> None:
        """The job's task is over, whatever its outcome (its last flush may have failed and
        never published `done`): what it published goes out, then its ring and outbox are
        freed. Streams still open on it replay the store from now on."""
        out = self._outboxes.get(job_id)
        if out is not None:
            self._fan_out(job_id)
        self._forget(job_id)

    def _forget(self, job_id: str) -> None:
        self._rings.pop(job_id, None)
        out = self._outboxes.pop(job_id, None)
        if out is not None:
            if out.timer is not None:
                out.timer.cancel()
            out.release(everyone=True)

    def holds(self, job_id: str) -> bool:
        """Whether the bus keeps memory for the job (a ring, or batches to fan out)."""
        return job_id in self._rings or job_id in self._outboxes

    def recent(self, job_id: str, after: int) -> tuple[bytes, int] | None:
        """The job's frames after `after` from memory, and the last id in them; None when
        they are not all there (the job ended, or `after` is older than the ring)."""
        ring = self._rings.get(job_id)
        return None if ring is None else ring.after(after)

    def live_owner(self, job_id: str) -> str | None:
        """The owner of a job running here now (it has a ring), without asking the store."""
        ring = self._rings.get(job_id)
        return None if ring is None else ring.owner

    @property
    def closed(self) -> bool:
        return self._closed

    def subscribers(self) -> int:
        return sum(len(s) for s in self._jobs.values()) + sum(len(s) for s in self._owners.values())

    def close(self) -> None:
        """End every subscription (daemon shutdown): streams must not hold shutdown up."""
        self._closed = True
        for out in self._outboxes.values():
            if out.timer is not None:
                out.timer.cancel()
            out.release(everyone=True)
        for table in (self._jobs, self._owners):
            for subs in table.values():
                for sub in subs:
                    sub.end()
