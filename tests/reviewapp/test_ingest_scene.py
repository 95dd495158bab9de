"""`manage.py ingest_scene` loads a simulator scene as a store, all or nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from reviewapp.models import AuditEvent, Camera, Footage, PlanogramSlot, Product, Store, Visit
from reviewapp.tokens import token_hash

pytestmark = pytest.mark.slow


def test_it_loads_products_camera_planogram_visits_and_footage(
    db, small_scene: Path, settings, tmp_path
) -> None:
    settings.MEDIA_ROOT = tmp_path
    call_command("ingest_scene", str(small_scene), "--store", "Sim", "--no-process")
    planogram = json.loads((small_scene / "planogram.json").read_text())
    visits = json.loads((small_scene / "visits.json").read_text())
    store = Store.objects.get(name="Sim")
    camera = Camera.objects.get(store=store)
    assert (camera.width, camera.height) == (640, 360)
    assert Product.objects.filter(store=store).count() == len(planogram["products"])
    assert PlanogramSlot.objects.filter(camera=camera).count() == len(planogram["slots"])
    assert all(p.image for p in Product.objects.filter(store=store))
    footage = Footage.objects.get(store=store)
    assert footage.status == "received" and footage.duration_s > 15 and len(footage.sha256) == 64
    assert (tmp_path / footage.file.name).exists()
    assert Visit.objects.filter(store=store).count() == len(visits)
    for entry in visits:
        visit = Visit.objects.get(store=store, token_hash=token_hash(entry["token"]))
        assert visit.token_last4 == entry["token"][-4:]
        assert abs((visit.entered_at - footage.started_at).total_seconds() - entry["entered_at"]) < 0.01
        assert visit.gate_image
    assert AuditEvent.objects.filter(action="footage.ingested").count() == 1


def test_the_payment_token_is_never_stored(db, small_scene: Path, settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path
    call_command("ingest_scene", str(small_scene), "--no-process")
    tokens = [v["token"] for v in json.loads((small_scene / "visits.json").read_text())]
    dumped = json.dumps(list(Visit.objects.values()), default=str) + json.dumps(
        list(AuditEvent.objects.values()), default=str
    )
    assert not any(token in dumped for token in tokens)


def test_ingesting_the_same_footage_twice_is_refused(db, small_scene: Path, settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path
    call_command("ingest_scene", str(small_scene), "--no-process")
    with pytest.raises(CommandError, match="already"):
        call_command("ingest_scene", str(small_scene), "--no-process")
    assert Footage.objects.count() == 1


def test_a_planogram_that_does_not_fit_the_frame_is_refused_and_nothing_is_written(
    db, small_scene: Path, settings, tmp_path
) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    bad = tmp_path / "bad"
    shutil.copytree(small_scene, bad)
    planogram = json.loads((bad / "planogram.json").read_text())
    planogram["slots"][0]["x"] = 2000
    (bad / "planogram.json").write_text(json.dumps(planogram))
    with pytest.raises(CommandError, match=planogram["slots"][0]["id"]):
        call_command("ingest_scene", str(bad), "--no-process")
    assert Store.objects.count() == 0 and Footage.objects.count() == 0


def test_a_corrupt_video_is_refused_with_a_clear_error(db, small_scene: Path, settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    bad = tmp_path / "bad"
    shutil.copytree(small_scene, bad)
    (bad / "footage.mp4").write_bytes(b"\x00not a video" * 100)
    with pytest.raises(CommandError, match="footage.mp4"):
        call_command("ingest_scene", str(bad), "--no-process")
    assert Footage.objects.count() == 0


def test_a_slot_a_later_planogram_drops_is_no_longer_tracked_but_kept(
    db, small_scene: Path, settings, tmp_path
) -> None:
    from reviewapp.services.ingest import planogram_of

    settings.MEDIA_ROOT = tmp_path / "media"
    call_command("ingest_scene", str(small_scene), "--no-process")
    later = tmp_path / "later"
    shutil.copytree(small_scene, later)
    planogram = json.loads((later / "planogram.json").read_text())
    dropped = planogram["slots"].pop(0)["id"]
    (later / "planogram.json").write_text(json.dumps(planogram))
    with open(later / "footage.mp4", "ab") as footage:
        footage.write(b"\0" * 64)  # another recording of the same camera
    call_command("ingest_scene", str(later), "--no-process")
    slot = PlanogramSlot.objects.get(slot_id=dropped)
    assert slot.retired_at is not None  # kept: events recorded on it still point at it
    assert dropped not in {s.id for s in planogram_of(slot.camera).slots}
    assert PlanogramSlot.objects.filter(camera=slot.camera, retired_at=None).count() == len(
        planogram["slots"]
    )
    # the slot back in a still later planogram is looked at again
    again = tmp_path / "again"
    shutil.copytree(small_scene, again)
    with open(again / "footage.mp4", "ab") as footage:
        footage.write(b"\0" * 128)
    call_command("ingest_scene", str(again), "--no-process")
    assert PlanogramSlot.objects.get(pk=slot.pk).retired_at is None
