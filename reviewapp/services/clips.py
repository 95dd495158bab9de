"""Preparing a flagged transaction for review: clips, poster frames, slot crops, then the task."""

from __future__ import annotations

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

from ..media import local_path, save_file, sha256_of_path
from ..models import Clip, EvidenceEvent, ReviewTask, TaskKind, Transaction
from ..states import OPEN_TASK_STATES, TransactionState
from .audit import SYSTEM, audit_record

CONTEXT_SECONDS = 1.5
REVIEWABLE_STATES = (TransactionState.NEEDS_REVIEW, TransactionState.ESCALATED)


def review_prepare(*, txn_id: int) -> str:
    """Cut the review media of a flagged transaction and queue its primary review task.

    Idempotent: clips already cut are kept; the task is created once (a unique
    constraint allows one open primary task per transaction). Media failures do not
    block review: the task is queued and the reviewer sees what could be made.
    """
    txn = Transaction.objects.select_related("store", "visit", "footage").get(pk=txn_id)
    if txn.state not in REVIEWABLE_STATES:
        return "not flagged"
    problems: list[str] = []
    if not txn.clips.exists() and txn.footage and txn.footage.file and not txn.footage.purged_at:
        problems = _cut_media(txn)
    return "queued" if review_task_queue(txn=txn, problems=problems) else "already queued"


def _cut_media(txn: Transaction) -> list[str]:
    footage = txn.footage
    assert footage is not None
    events = list(txn.events.select_related("slot"))
    problems: list[str] = []
    if events:
        intervals = [(e.t_start, e.t_end) for e in events]
    else:  # nothing seen (or no usable tracking): show the whole visit
        start = max(0.0, (txn.visit.entered_at - footage.started_at).total_seconds())
        end = (
            (txn.visit.exited_at - footage.started_at).total_seconds()
            if txn.visit.exited_at
            else footage.duration_s
        )
        intervals = [(start, max(start + 1.0, end or start + 1.0))]
    fps = footage.camera.fps
    with local_path(footage.file) as video, tempfile.TemporaryDirectory(prefix="cr-clips-") as tmp:
        spans = cutter.merge_spans(intervals, context=CONTEXT_SECONDS, duration=footage.duration_s)
        made: list[tuple[Clip, list[EvidenceEvent]]] = []
        redacted_for: dict[int, tuple[Path, float]] = {}
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
            shown = out
            if txn.store.privacy_mode:
                # reviewers only ever receive this one: faces and shoppers blurred, the slots sharp
                redacted = Path(tmp) / f"clip-{n}-redacted.mp4"
                keep = [tuple(int(v) for v in e.slot.rect) for e in members if e.slot]
                try:
                    redact_video(
                        out,
                        redacted,
                        keep=keep,
                        tracks=footage.tracks or None,
                        first_frame=round((clip.media_start or 0.0) * fps),
                    )
                except RedactError as exc:
                    problems.append(f"redaction failed, the clip is held back from reviewers: {exc}")
                else:
                    clip.redacted_sha256 = sha256_of_path(redacted)
                    save_file(clip.redacted_file, f"{txn.code}-{n}-r.mp4", redacted)
                    shown = redacted
                    for event in members:
                        redacted_for[event.pk] = (redacted, clip.media_start or 0.0)
            try:
                cutter.write_poster(shown, poster, frame_number=0)
                save_file(clip.poster, f"{txn.code}-{n}.jpg", poster)
            except cutter.ClipError as exc:
                problems.append(str(exc))
            made.append((clip, members))
        wanted: dict[EvidenceEvent, tuple[int, int, tuple[int, int, int, int]]] = {}
        for event in events:
            if not (event.slot and event.before_box):
                continue
            before = event.before_frame if event.before_frame is not None else int(event.t_start * fps) - 1
            after = event.after_frame if event.after_frame is not None else int(event.t_end * fps) + 1
            wanted[event] = (before, after, tuple(int(v) for v in event.before_box))  # type: ignore[misc]
        # In privacy mode the crops come from the redacted clip (a shopper may stand in the
        # margin around the slot), by the clip's own frame numbers; without one, no crops.
        sources: dict[Path, list[tuple[EvidenceEvent, int, int]]] = {}
        for event, (before, after, _box) in wanted.items():
            if txn.store.privacy_mode:
                if event.pk not in redacted_for:
                    continue
                source, start = redacted_for[event.pk]
                offset = round(start * fps)
                sources.setdefault(source, []).append(
                    (event, max(0, before - offset), max(0, after - offset))
                )
            else:
                sources.setdefault(Path(video), []).append((event, before, after))
        frames: dict[tuple[Path, int], Any] = {}
        for source, items in sources.items():
            try:
                got = cutter.read_frames(source, [n for _e, b, a in items for n in (b, a)])
            except cutter.ClipError as exc:
                problems.append(str(exc))
                continue
            frames.update({(source, number): frame for number, frame in got.items()})
        for source, event, before, after in [(src, *item) for src, its in sources.items() for item in its]:
            box = wanted[event][2]
            try:
                for name, number in (("before", before), ("after", after)):
                    if (source, number) not in frames:
                        continue
                    path = Path(tmp) / f"{event.code}-{name}.png"
                    cutter.write_crop_of(frames[(source, number)], path, box=box)
                    save_file(getattr(event, f"{name}_crop"), f"{event.code}-{name}.png", path)
                event.save(update_fields=["before_crop", "after_crop"])
            except cutter.ClipError as exc:
                problems.append(str(exc))
        with db.atomic():
            for clip, members in made:
                clip.save()
                clip.events.set(members)
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
