"""Preparing a flagged transaction for review: clips, poster frames, slot crops, then the task."""

from __future__ import annotations

import logging
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.db import IntegrityError
from django.db import transaction as db
from django.utils import timezone

from tracking import clips as cutter
from tracking.redact import RedactError, redact_video
from tracking.video import VideoError, probe

from ..media import delete_file, local_path, save_file, sha256_of_path
from ..models import Clip, EvidenceEvent, Footage, ReviewTask, TaskKind, Transaction
from ..states import OPEN_TASK_STATES, TransactionState
from .audit import SYSTEM, audit_record

log = logging.getLogger(__name__)

CONTEXT_SECONDS = 1.5
REVIEWABLE_STATES = (TransactionState.NEEDS_REVIEW, TransactionState.ESCALATED)
# A media task prepares the waiting transactions of its footage that need less clip time than its
# own first, up to this much clip time, so one long transaction does not hold the others back.
SHORTER_FIRST_BUDGET_S = 90.0

Box = tuple[int, int, int, int]


def review_prepare(*, txn_id: int) -> str:
    """Cut the review media of a flagged transaction and queue its primary review task.

    A footage's flagged transactions are triaged together, so their tasks reach the media
    worker at once, in cart order. Before its own transaction, a task prepares the ones of the
    same footage still waiting that need less clip time (shortest first, within
    SHORTER_FIRST_BUDGET_S): the work is the same, but each becomes reviewable sooner on
    average. Their own tasks then find them done.

    Idempotent: clips already cut are kept; the task is created once (a unique
    constraint allows one open primary task per transaction). Media failures do not
    block review: the task is queued and the reviewer sees what could be made.
    """
    txn = Transaction.objects.select_related("store", "visit", "footage", "footage__camera").get(pk=txn_id)
    if txn.state not in REVIEWABLE_STATES:
        return "not flagged"
    if _needs_media(txn):
        for other in _shorter_waiting(txn):
            try:
                _prepare_one(other.pk)
            except Exception:  # its own task retries it; this one's transaction comes first
                log.exception("preparing transaction %s ahead of %s failed", other.pk, txn.pk)
    return "queued" if _prepare_one(txn.pk, txn=txn) else "already queued"


def _prepare_one(txn_id: int, *, txn: Transaction | None = None) -> bool:
    if txn is None:
        txn = Transaction.objects.select_related("store", "visit", "footage", "footage__camera").get(
            pk=txn_id
        )
        if txn.state not in REVIEWABLE_STATES:
            return False
    problems = _cut_media(txn) if _needs_media(txn) else []
    return review_task_queue(txn=txn, problems=problems) is not None


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


def _shorter_waiting(txn: Transaction) -> list[Transaction]:
    """Flagged transactions of the same footage with no media and no task yet that need less
    clip time than `txn` (ties by id), shortest first, within SHORTER_FIRST_BUDGET_S."""
    waiting = (
        Transaction.objects.filter(footage_id=txn.footage_id, state__in=REVIEWABLE_STATES, clips__isnull=True)
        .exclude(tasks__kind=TaskKind.PRIMARY)
        .exclude(pk=txn.pk)
        .select_related("visit", "footage")
    )
    own = (_clip_seconds(txn), txn.pk)
    shorter = sorted(key for key in ((_clip_seconds(t), t.pk) for t in waiting) if key < own)
    chosen, total = [], 0.0
    for seconds, pk in shorter:
        if total + seconds > SHORTER_FIRST_BUDGET_S:
            break
        total += seconds
        chosen.append(pk)
    by_pk = {t.pk: t for t in waiting if t.pk in chosen}
    return [by_pk[pk] for pk in chosen]


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


def _cut_media(txn: Transaction) -> list[str]:
    footage = txn.footage
    assert footage is not None
    events = list(txn.events.select_related("slot"))
    problems: list[str] = []
    private = txn.store.privacy_mode
    fps = footage.camera.fps
    wanted = _crop_frames(events, fps)
    stored: list[Any] = []  # field files written, removed again if another worker got here first
    # the picture each crop is taken from: (source, frame number) -> BGR frame
    pictures: dict[tuple[str, int], Any] = {}
    crop_at: dict[EvidenceEvent, tuple[str, int, int]] = {}
    with local_path(footage.file) as video, tempfile.TemporaryDirectory(prefix="cr-clips-") as tmp:
        spans = cutter.merge_spans(
            _intervals(txn, footage, events), context=CONTEXT_SECONDS, duration=footage.duration_s
        )
        made: list[tuple[Clip, list[EvidenceEvent]]] = []
        for n, span in enumerate(spans):
            out = Path(tmp) / f"clip-{n}.mp4"
            poster = Path(tmp) / f"poster-{n}.jpg"
            members = [events[i] for i in span.members] if events else []
            try:
                cutter.cut_clip(video, out, start=span.start, end=span.end)
            except cutter.ClipError as exc:
                problems.append(str(exc))
                continue
            try:
                cut_duration = probe(out).duration
            except VideoError:
                cut_duration = span.end - span.start
            clip = Clip(
                transaction=txn,
                footage=footage,
                t_start=span.start,
                t_end=span.end,
                media_start=max(0.0, span.end - cut_duration),
            )
            clip.sha256 = sha256_of_path(out)
            save_file(clip.file, f"{txn.code}-{n}.mp4", out)
            stored.append(clip.file)
            made.append((clip, members))
            if not private:
                try:
                    cutter.write_poster(out, poster, frame_number=0)
                    save_file(clip.poster, f"{txn.code}-{n}.jpg", poster)
                    stored.append(clip.poster)
                except cutter.ClipError as exc:
                    problems.append(str(exc))
                continue
            # Reviewers only ever receive the redacted clip: faces and shoppers blurred, the slots
            # sharp. Its poster and the slot crops (a shopper may stand in the margin around the
            # slot) are its own frames, handed back by the redaction; no redacted clip, no poster
            # and no crops.
            redacted = Path(tmp) / f"clip-{n}-redacted.mp4"
            keep = [tuple(int(v) for v in e.slot.rect) for e in members if e.slot]
            offset = round((clip.media_start or 0.0) * fps)
            at = {
                e: (max(0, wanted[e][0] - offset), max(0, wanted[e][1] - offset))
                for e in members
                if e in wanted
            }
            try:
                report = redact_video(
                    out,
                    redacted,
                    keep=keep,
                    tracks=footage.tracks or None,
                    first_frame=offset,
                    grab={0, *(k for pair in at.values() for k in pair)},
                )
            except RedactError as exc:
                problems.append(f"redaction failed, the clip is held back from reviewers: {exc}")
                continue
            clip.redacted_sha256 = sha256_of_path(redacted)
            save_file(clip.redacted_file, f"{txn.code}-{n}-r.mp4", redacted)
            stored.append(clip.redacted_file)
            pictures.update({(f"clip-{n}", k): frame for k, frame in report.grabbed.items()})
            crop_at.update({e: (f"clip-{n}", b, a) for e, (b, a) in at.items()})
            try:
                cutter.write_poster_of(report.grabbed[0], poster)
                save_file(clip.poster, f"{txn.code}-{n}.jpg", poster)
                stored.append(clip.poster)
            except (cutter.ClipError, KeyError) as exc:
                problems.append(f"no poster for clip {n}: {exc}")
        if not private:  # the crops come from the footage itself
            crop_at = {e: ("footage", before, after) for e, (before, after, _box) in wanted.items()}
        if not private and crop_at:
            numbers = [k for _src, b, a in crop_at.values() for k in (b, a)]
            try:
                got = cutter.read_frames(video, numbers)
            except cutter.ClipError as exc:
                problems.append(str(exc))
            else:
                pictures.update({("footage", k): frame for k, frame in got.items()})
        cropped: list[EvidenceEvent] = []
        for event, (source, before, after) in crop_at.items():
            box = wanted[event][2]
            try:
                for name, number in (("before", before), ("after", after)):
                    if (source, number) not in pictures:
                        continue
                    path = Path(tmp) / f"{event.code}-{name}.png"
                    cutter.write_crop_of(pictures[(source, number)], path, box=box)
                    field = getattr(event, f"{name}_crop")
                    save_file(field, f"{event.code}-{name}.png", path)
                    stored.append(field)
                cropped.append(event)
            except cutter.ClipError as exc:
                problems.append(str(exc))
        with db.atomic():
            # another worker may have prepared this transaction meanwhile (a redelivered task,
            # or one that took it ahead of its own): keep the first media, drop these
            Transaction.objects.select_for_update().filter(pk=txn.pk).first()
            if txn.clips.exists():
                for field in stored:
                    delete_file(field)
                return problems
            for clip, members in made:
                clip.save()
                clip.events.set(members)
            for event in cropped:
                event.save(update_fields=["before_crop", "after_crop"])
    return problems


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


__all__ = ["OPEN_TASK_STATES", "review_prepare", "review_task_queue"]
