"""Preparing a flagged transaction for review: clips, poster frames, slot crops, then the task."""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError
from django.db import transaction as db
from django.db.models import Q, QuerySet
from django.utils import timezone

from tracking import clips as cutter
from tracking.redact import RedactError, redact_video
from tracking.video import VideoError, probe

from ..media import delete_file, local_path, save_file, sha256_of_path
from ..models import Clip, EvidenceEvent, Footage, ReviewTask, TaskKind, Transaction
from ..states import OPEN_TASK_STATES, TransactionState
from .audit import SYSTEM, audit_record
from .disputes import dispute_window_open

log = logging.getLogger(__name__)

CONTEXT_SECONDS = 1.5
REVIEWABLE_STATES = (TransactionState.NEEDS_REVIEW, TransactionState.ESCALATED)
# The redacted clip reviewers watch is encoded at most this tall (960x540 from 720p footage): the
# review page shows it at most about 760 CSS pixels wide, and it costs about 40% less encoder time
# than full size. Faces are found and blurred on full-size frames, and the poster and slot crops
# are cut from full-size frames; the original clip (supervisors) is the footage's own stream.
REVIEW_CLIP_HEIGHT = 540
# Clips made at once by one media task: each runs a decoder and an encoder process beside the
# Python thread that finds and blurs faces (the detector releases the GIL), so one per core.
MEDIA_THREADS = max(1, min(4, os.cpu_count() or 1))

Box = tuple[int, int, int, int]


def review_prepare(*, txn_id: int) -> str:
    """Cut the review media of a flagged transaction and queue its primary review task.

    Used for a transaction flagged on its own (footage that could not be tracked, a cart
    re-triaged); a tracked footage's flagged transactions go through footage_review_prepare,
    one task for them all. Either way the media of every flagged transaction of that footage
    still waiting is made at once (`_prepare_waiting`).

    Idempotent: clips already cut are kept; the task is created once (a unique
    constraint allows one open primary task per transaction). Media failures do not
    block review: the task is queued and the reviewer sees what could be made.

    A transaction never flagged (it settled on its own) that has a task open, a dispute,
    gets its media the same way, and no primary task (`_media_for_open_task`).
    """
    txn = (
        Transaction.objects.select_related("store", "visit", "footage", "footage__camera")
        .defer("footage__tracks")  # read once, by `_footage_tracks`
        .get(pk=txn_id)
    )
    if txn.state not in REVIEWABLE_STATES:
        return _media_for_open_task(txn)
    if not _needs_media(txn):
        return "queued" if review_task_queue(txn=txn, problems=[]) is not None else "already queued"
    others = [t for t in _waiting(txn.footage_id) if t.pk != txn.pk]  # the rest: their own tasks, the sweep
    queued, held = _prepare_waiting([txn, *others], own=txn.pk, limit=settings.MEDIA_BATCH_TRANSACTIONS)
    if txn.pk in held:
        return "in progress"  # another media task is making it; the task looks again later
    return "queued" if queued.get(txn.pk) else "already queued"


def _media_for_open_task(txn: Transaction) -> str:
    """The clips of a transaction that was never flagged (it settled on its own) and now has a
    task open, a dispute above all: the reviewer of a contested charge must see what the camera
    saw; or that may still be disputed when its footage is about to go (retention cuts them
    first). The media only; no review task."""
    if not (txn.tasks.filter(state__in=OPEN_TASK_STATES).exists() or dispute_window_open(txn)):
        return "not flagged"
    if not _needs_media(txn):
        return "nothing to make"
    _queued, held = _prepare_waiting([txn], own=txn.pk, queue=False)
    return "in progress" if txn.pk in held else "media made"


def footage_review_prepare(*, footage_id: int) -> str:
    """Cut the media of every flagged transaction of one footage still waiting for it (no clips,
    no review task) and queue each one's review task as soon as its own media is stored.

    A tracked footage's flagged transactions are triaged together and this runs for them all:
    one message on the media queue rather than one per transaction, each of which a polling
    broker delivers a poll apart. At most MEDIA_BATCH_TRANSACTIONS of them (the shortest) are
    made at a time: "more waiting" says to run it again for the rest, and for those flagged
    meanwhile (its carts are handed out while it is tracked), behind what else is queued.
    Returns "in progress" if another media task holds some of them (the caller looks again; a
    killed holder's claim lapses).
    """
    waiting = _waiting(footage_id)
    if not waiting:
        return "nothing waiting"
    queued = 0
    for txn in [t for t in waiting if not _needs_media(t)]:  # purged or file-less footage
        queued += review_task_queue(txn=txn, problems=[]) is not None
    needs = [t for t in waiting if _needs_media(t)]
    done, held = _prepare_waiting(needs, own=None, limit=settings.MEDIA_BATCH_TRANSACTIONS)
    queued += sum(done.values())
    if held:
        return "in progress"
    # more than a batch, or carts of it flagged meanwhile (handed out while it is still tracked);
    # none made: the sweep sees to them
    if done and media_untaken(Transaction.objects.filter(footage_id=footage_id)):
        return "more waiting"
    return f"{queued} queued"


def media_untaken(txns: QuerySet[Transaction]) -> list[int]:
    """Those of these transactions that wait for their review media (`_awaiting_media`) with no
    media task on them yet (unclaimed): their ids."""
    return list(
        _awaiting_media(txns).filter(media_claimed_at__isnull=True).values_list("pk", flat=True).distinct()
    )


def _awaiting_media(txns: QuerySet[Transaction]) -> QuerySet[Transaction]:
    """Those of these transactions that wait for their review media: flagged, no clips, no review task."""
    return txns.filter(state__in=REVIEWABLE_STATES, clips__isnull=True).exclude(tasks__kind=TaskKind.PRIMARY)


def _prepare_waiting(
    txns: list[Transaction], *, own: int | None, queue: bool = True, limit: int | None = None
) -> tuple[dict[int, bool], set[int]]:
    """Make the media of these transactions of one footage, shortest first (at most `limit` of
    them, `own` among them), on every core the worker has, and queue each one's review task
    (unless `queue` is False: it has one) as soon as its own media is stored.

    The transactions are claimed first (one UPDATE each way, `_media_claim`), so two media
    workers never make the same clips. Returns, per transaction made here, whether this call
    queued its task, and the ids another task holds. A failure to prepare `own` is raised.
    """
    if not txns:
        return {}, set()
    candidates = sorted(txns, key=lambda t: (_clip_seconds(t), t.pk))
    if limit is not None and len(candidates) > limit:  # the shortest, `own` among them, still in order
        others = [t.pk for t in candidates if t.pk != own]
        own_here = len(others) < len(candidates)
        kept = set(others[: limit - own_here])
        candidates = [t for t in candidates if t.pk == own or t.pk in kept]
    token = uuid.uuid4().hex
    mine = _media_claim(candidates, token)
    held = {t.pk for t in candidates} - mine
    try:
        if not mine or (own is not None and own in held):
            return {}, held
        queued = _prepare_batch([t for t in candidates if t.pk in mine], own=own, queue=queue)
    finally:
        Transaction.objects.filter(pk__in=mine, media_claim=token).update(
            media_claim="", media_claimed_at=None
        )
    return queued, held


def media_stuck(*, now: datetime | None = None, limit: int = 200) -> list[int]:
    """Flagged transactions that should have had their review task by now and have none: the media
    task failed on something unforeseen, or its message was lost with a broker. Oldest first; none
    that a media task is still making (a claim younger than the media time limit). Then disputed
    carts that settled on their own whose clips are still not cut. The periodic sweep queues each
    again, so a flagged cart never waits unseen."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMITS["media"] + 60)
    unclaimed = Q(media_claimed_at__isnull=True) | Q(media_claimed_at__lt=stale)
    flagged = list(
        Transaction.objects.filter(state__in=REVIEWABLE_STATES, triaged_at__lt=stale)
        .exclude(tasks__kind=TaskKind.PRIMARY)
        .filter(unclaimed)
        .order_by("triaged_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    # a dispute of a cart that settled on its own, still without clips from footage still held:
    # looked at again for an hour after the dispute opened (media that cannot be made is not
    # tried for ever; the reviewer is told there is no clip)
    disputed = (
        Transaction.objects.filter(
            state=TransactionState.DISPUTED,
            clips__isnull=True,
            footage__purged_at__isnull=True,
            tasks__kind=TaskKind.DISPUTE,
            tasks__state__in=OPEN_TASK_STATES,
            tasks__created_at__lt=stale,
            tasks__created_at__gte=now - timedelta(hours=1),
        )
        .exclude(footage__file="")
        .filter(unclaimed)
        .order_by("pk")
        .distinct()
        .values_list("pk", flat=True)[: max(0, limit - len(flagged))]
    )
    return flagged + list(disputed)


def _media_claim(txns: list[Transaction], token: str) -> set[int]:
    """Claim the making of these transactions' media for one task: those no other task holds, or
    whose holder has outlived the media time limit (killed). One UPDATE, so two workers never
    both make one transaction's clips."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMITS["media"])
    ids = [t.pk for t in txns]
    Transaction.objects.filter(pk__in=ids).filter(
        Q(media_claimed_at__isnull=True) | Q(media_claimed_at__lt=stale)
    ).update(media_claim=token, media_claimed_at=now)
    return set(Transaction.objects.filter(pk__in=ids, media_claim=token).values_list("pk", flat=True))


def media_being_made(task: ReviewTask) -> bool:
    """Is the media of this task's transaction still being cut? A task opened on a cart that
    settled on its own (a dispute) comes before its clips, which a media task cuts from the
    footage then; a primary task is only queued once its media is made (or failed)."""
    if task.kind == TaskKind.PRIMARY or not _needs_media(task.transaction):
        return False
    limit = timedelta(seconds=settings.CELERY_TASK_TIME_LIMITS["media"] + 60)
    return task.created_at > timezone.now() - limit


def _needs_media(txn: Transaction) -> bool:
    footage = txn.footage
    return bool(footage and footage.file and not footage.purged_at and not txn.clips.exists())


def _intervals(txn: Transaction, footage: Footage, events: list[EvidenceEvent]) -> list[tuple[float, float]]:
    if events:
        return [(e.t_start, e.t_end) for e in events]
    # nothing seen (or no usable tracking): show the whole visit
    start = max(0.0, (txn.visit.entered_at - footage.started_at).total_seconds())
    end = (
        (txn.visit.exited_at - footage.started_at).total_seconds()
        if txn.visit.exited_at
        else footage.duration_s
    )
    return [(start, max(start + 1.0, end or start + 1.0))]


def _clip_seconds(txn: Transaction) -> float:
    footage = txn.footage
    assert footage is not None
    spans = cutter.merge_spans(
        _intervals(txn, footage, list(txn.events.all())), context=CONTEXT_SECONDS, duration=footage.duration_s
    )
    return sum(span.end - span.start for span in spans)


def _waiting(footage_id: int | None) -> list[Transaction]:
    """The flagged transactions of a footage with no media and no task yet."""
    return list(
        _awaiting_media(Transaction.objects.filter(footage_id=footage_id))
        .select_related("store", "visit", "footage", "footage__camera")
        .defer("footage__tracks")  # read once, by `_footage_tracks`
        .distinct()
    )


def _crop_frames(events: list[EvidenceEvent], fps: float) -> dict[EvidenceEvent, tuple[int, int, Box]]:
    """Footage frame numbers before and after each event with a slot, and the slot box."""
    wanted: dict[EvidenceEvent, tuple[int, int, Box]] = {}
    for event in events:
        if not (event.slot and event.before_box):
            continue
        before = event.before_frame if event.before_frame is not None else int(event.t_start * fps) - 1
        after = event.after_frame if event.after_frame is not None else int(event.t_end * fps) + 1
        x, y, w, h = (int(v) for v in event.before_box)
        wanted[event] = (before, after, (x, y, w, h))
    return wanted


@dataclass
class _ClipJob:
    """One clip of one transaction to make; plain values only, so a thread can make it."""

    n: int
    span: cutter.Span
    members: list[EvidenceEvent]
    keep: list[Box]
    crops: dict[str, tuple[int, int, Box]]  # event code -> footage frames before/after, slot box
    private: bool
    fps: float
    tracks: Any


@dataclass
class _Made:
    """What making one clip left in the temporary folder, and what went wrong."""

    job: _ClipJob
    clip: Path | None = None
    media_start: float = 0.0
    redacted: Path | None = None
    poster: Path | None = None
    crops: dict[tuple[str, str], Path] = field(default_factory=dict)  # (event code, before|after)
    problems: list[str] = field(default_factory=list)


@dataclass
class _Plan:
    txn: Transaction
    events: list[EvidenceEvent]
    jobs: list[_ClipJob]


def _footage_tracks(footage: Footage) -> Any:
    """The footage's shopper tracks, read once for all the clips cut from it (None: none). An hour
    of footage holds tens of thousands of samples: the transactions listed with their footage
    leave them out (`defer`), rather than carry a copy each."""
    return Footage.objects.filter(pk=footage.pk).values_list("tracks", flat=True).first() or None


def _plan(txn: Transaction, tracks: Any) -> _Plan:
    """The clips a transaction needs (database reads only; the caller makes them), `tracks` being
    its footage's (`_footage_tracks`)."""
    footage = txn.footage
    assert footage is not None
    events = list(txn.events.select_related("slot"))
    fps = footage.camera.fps
    wanted = _crop_frames(events, fps)
    spans = cutter.merge_spans(
        _intervals(txn, footage, events), context=CONTEXT_SECONDS, duration=footage.duration_s
    )
    jobs = []
    for n, span in enumerate(spans):
        members = [events[i] for i in span.members] if events else []
        jobs.append(
            _ClipJob(
                n=n,
                span=span,
                members=members,
                keep=[_box(e.slot.rect) for e in members if e.slot],
                crops={str(e.code): wanted[e] for e in members if e in wanted},
                private=txn.store.privacy_mode,
                fps=fps,
                tracks=tracks,
            )
        )
    return _Plan(txn=txn, events=events, jobs=jobs)


def _box(rect: Any) -> Box:
    x, y, w, h = (int(v) for v in rect)
    return (x, y, w, h)


def _make_clip(video: Path, tmp: Path, prefix: str, job: _ClipJob) -> _Made:
    """Cut one clip and, in privacy mode, its redacted copy; its poster and its events' slot
    crops. Touches no database and no storage: files only, in `tmp`."""
    made = _Made(job=job)
    span, n = job.span, job.n
    out = tmp / f"{prefix}-clip-{n}.mp4"
    poster = tmp / f"{prefix}-poster-{n}.jpg"
    try:
        cutter.cut_clip(video, out, start=span.start, end=span.end)
    except cutter.ClipError as exc:
        made.problems.append(str(exc))
        return made
    try:
        cut_duration = probe(out).duration
    except VideoError:
        cut_duration = span.end - span.start
    made.clip = out
    made.media_start = max(0.0, span.end - cut_duration)
    pictures: dict[int, Any] = {}  # frame number (of `source` below) -> BGR frame
    if not job.private:
        try:
            cutter.write_poster(out, poster, frame_number=0)
            made.poster = poster
        except cutter.ClipError as exc:
            made.problems.append(str(exc))
        at = {code: (before, after) for code, (before, after, _box) in job.crops.items()}
        if at:  # the crops come from the footage itself
            try:
                pictures = cutter.read_frames(video, [k for pair in at.values() for k in pair])
            except cutter.ClipError as exc:
                made.problems.append(str(exc))
    else:
        # Reviewers only ever receive the redacted clip: faces and shoppers blurred, the slots
        # sharp. Its poster and the slot crops (a shopper may stand in the margin around the
        # slot) are its own frames, handed back by the redaction at full size; no redacted clip,
        # no poster and no crops.
        redacted = tmp / f"{prefix}-clip-{n}-redacted.mp4"
        offset = round(made.media_start * job.fps)
        at = {
            code: (max(0, before - offset), max(0, after - offset))
            for code, (before, after, _box) in job.crops.items()
        }
        try:
            report = redact_video(
                out,
                redacted,
                keep=job.keep,
                tracks=job.tracks,
                first_frame=offset,
                grab={0, *(k for pair in at.values() for k in pair)},
                out_height=REVIEW_CLIP_HEIGHT,
            )
        except RedactError as exc:
            made.problems.append(f"redaction failed, the clip is held back from reviewers: {exc}")
            return made
        made.redacted = redacted
        pictures = dict(report.grabbed)
        try:
            cutter.write_poster_of(report.grabbed[0], poster)
            made.poster = poster
        except (cutter.ClipError, KeyError) as exc:
            made.problems.append(f"no poster for clip {n}: {exc}")
    for code, (before, after) in at.items():
        box = job.crops[code][2]
        try:
            for name, number in (("before", before), ("after", after)):
                if number not in pictures:
                    continue
                path = tmp / f"{prefix}-{code}-{name}.png"
                cutter.write_crop_of(pictures[number], path, box=box)
                made.crops[(code, name)] = path
        except cutter.ClipError as exc:
            made.problems.append(str(exc))
    return made


@contextmanager
def _media_pool() -> Iterator[ThreadPoolExecutor]:
    """Threads that make clips. Leaving early (an error, the task's soft time limit) drops the
    clips not yet begun and waits only for those being made, which use the temporary folder."""
    pool = ThreadPoolExecutor(max_workers=MEDIA_THREADS, thread_name_prefix="media")
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _prepare_batch(batch: list[Transaction], *, own: int | None, queue: bool = True) -> dict[int, bool]:
    """Make the media of transactions of one footage, MEDIA_THREADS clips at a time in the order
    given, and store each transaction's media and queue its task as soon as its clips are made.

    The threads only run ffmpeg, the detector and OpenCV on files; the database and the
    storage are used from this thread alone. Returns, per transaction, whether this call
    queued its task. A failure to prepare another transaction is logged (its own task
    retries it); one to prepare `own` is raised once the others are done.
    """
    footage = batch[0].footage
    assert footage is not None and all(t.footage_id == footage.pk for t in batch)
    queued: dict[int, bool] = {}
    plans: list[_Plan] = []
    own_error: Exception | None = None
    tracks = _footage_tracks(footage)
    for txn in batch:
        try:
            plans.append(_plan(txn, tracks))
        except Exception as exc:
            if txn.pk == own:
                own_error = exc
            log.exception("planning the media of transaction %s failed", txn.pk)
    with (
        local_path(footage.file) as video,
        tempfile.TemporaryDirectory(prefix="cr-clips-") as folder,
        _media_pool() as pool,
    ):
        tmp = Path(folder)
        futures = {
            plan.txn.pk: [pool.submit(_make_clip, video, tmp, f"t{plan.txn.pk}", job) for job in plan.jobs]
            for plan in plans
        }
        for plan in plans:  # in the order given: the shortest is made first
            txn = plan.txn
            try:
                made: list[_Made] = []
                for future in futures[txn.pk]:
                    try:
                        made.append(future.result())
                    except Exception as exc:  # a bug, not bad media: the reviewer still gets a task
                        log.exception("making a clip of transaction %s failed", txn.pk)
                        made.append(
                            _Made(job=plan.jobs[len(made)], problems=[f"{type(exc).__name__}: {exc}"])
                        )
                problems = _store(plan, made)
                if queue:
                    queued[txn.pk] = review_task_queue(txn=txn, problems=problems) is not None
                elif problems:
                    log.warning("media of transaction %s: %s", txn.pk, "; ".join(problems))
            except Exception as exc:
                if txn.pk == own:
                    own_error = exc
                log.exception("preparing transaction %s failed", txn.pk)
    if own_error is not None:
        raise own_error
    return queued


def _store(plan: _Plan, made: list[_Made]) -> list[str]:
    """Store the files made for one transaction and record its clips and crops; the problems."""
    txn = plan.txn
    footage = txn.footage
    problems = [p for m in made for p in m.problems]
    stored: list[Any] = []  # field files written, removed again if another worker got here first
    clips: list[tuple[Clip, list[EvidenceEvent]]] = []
    by_code = {str(e.code): e for e in plan.events}
    cropped: dict[str, EvidenceEvent] = {}
    for m in made:
        if m.clip is None:
            continue
        n = m.job.n
        span = m.job.span
        clip = Clip(
            transaction=txn, footage=footage, t_start=span.start, t_end=span.end, media_start=m.media_start
        )
        clip.sha256 = sha256_of_path(m.clip)
        save_file(clip.file, f"{txn.code}-{n}.mp4", m.clip)
        stored.append(clip.file)
        if m.redacted is not None:
            clip.redacted_sha256 = sha256_of_path(m.redacted)
            save_file(clip.redacted_file, f"{txn.code}-{n}-r.mp4", m.redacted)
            stored.append(clip.redacted_file)
        if m.poster is not None:
            save_file(clip.poster, f"{txn.code}-{n}.jpg", m.poster)
            stored.append(clip.poster)
        for (code, name), path in m.crops.items():
            event = by_code[code]
            crop_field = getattr(event, f"{name}_crop")
            save_file(crop_field, f"{code}-{name}.png", path)
            stored.append(crop_field)
            cropped[code] = event
        clips.append((clip, m.job.members))
    with db.atomic():
        # another worker may have prepared this transaction meanwhile (a redelivered task,
        # or one that took it ahead of its own): keep the first media, drop these
        Transaction.objects.select_for_update().filter(pk=txn.pk).first()
        if txn.clips.exists():
            for stored_field in stored:
                delete_file(stored_field)
            return problems
        for clip, members in clips:
            clip.save()
            clip.events.set(members)
        for event in cropped.values():
            event.save(update_fields=["before_crop", "after_crop"])
    return problems


def _cut_media(txn: Transaction) -> list[str]:
    """Make and store one transaction's media (its clips at once); the problems met."""
    footage = txn.footage
    assert footage is not None
    plan = _plan(txn, _footage_tracks(footage))
    with (
        local_path(footage.file) as video,
        tempfile.TemporaryDirectory(prefix="cr-clips-") as folder,
        _media_pool() as pool,
    ):
        made = list(pool.map(lambda job: _make_clip(video, Path(folder), "t", job), plan.jobs))
        return _store(plan, made)


def review_task_queue(
    *, txn: Transaction, problems: list[str] | None = None, priority: int = 0
) -> ReviewTask | None:
    """Queue the primary review task, once. Returns None if one is already open or done."""
    if txn.tasks.filter(kind=TaskKind.PRIMARY).exists():
        return None
    ended = txn.visit.exited_at or timezone.now()
    settle_by = ended + timedelta(minutes=txn.store.settle_within_minutes)
    try:
        with db.atomic():
            task = ReviewTask.objects.create(
                transaction=txn, kind=TaskKind.PRIMARY, priority=priority, settle_by=settle_by
            )
            audit_record(
                actor=SYSTEM,
                action="task.queued",
                obj=task,
                store=txn.store,
                txn=txn,
                after={
                    "kind": task.kind,
                    "priority": priority,
                    "settle_by": settle_by,
                    "media_problems": problems or [],
                },
            )
    except IntegrityError:
        return None
    return task


__all__ = ["OPEN_TASK_STATES", "footage_review_prepare", "media_stuck", "review_prepare", "review_task_queue"]
