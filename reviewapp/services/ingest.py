"""Getting stores, visits and footage in: from a simulator scene folder or a store system's API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.db import IntegrityError
from django.db import transaction as db
from django.utils import timezone

from tracking import scene as scene_io
from tracking.video import VideoError, probe

from ..media import save_file, sha256_of_path
from ..models import Camera, Footage, PlanogramSlot, Product, Store, Visit
from ..states import DomainError, FootageStatus
from ..tokens import token_hash, token_last4
from .audit import audit_record


class IngestError(DomainError):
    pass


@dataclass(frozen=True)
class IngestResult:
    store: Store
    camera: Camera
    footage: Footage
    visits: list[Visit]


def scene_ingest(
    *,
    scene_dir: Path,
    store_name: str,
    actor: Any,
    started_at: datetime | None = None,
    process: bool = True,
) -> IngestResult:
    """Load a simulator scene as a store's products, camera, planogram, visits and footage.

    Everything lands in one database transaction or not at all. The footage's first
    frame is placed at `started_at` (default: so that the footage ends now). With
    `process`, tracking is queued once the transaction commits.
    """
    scene_dir = Path(scene_dir)
    try:
        planogram = scene_io.load_planogram(scene_dir / "planogram.json")
        visits = scene_io.load_visits(scene_dir / "visits.json")
    except (scene_io.SceneFormatError, OSError) as exc:
        raise IngestError(f"{scene_dir}: {exc}") from exc
    footage_path = scene_dir / "footage.mp4"
    try:
        info = probe(footage_path)
    except VideoError as exc:
        raise IngestError(f"{footage_path}: {exc}") from exc
    if (info.width, info.height) != (planogram.camera.width, planogram.camera.height):
        raise IngestError(
            f"footage is {info.width}x{info.height} but the planogram's camera is "
            f"{planogram.camera.width}x{planogram.camera.height}"
        )
    digest = sha256_of_path(footage_path)
    started_at = started_at or timezone.now() - timedelta(seconds=info.duration)

    with db.atomic():
        store, _ = Store.objects.get_or_create(name=store_name, defaults={"currency": planogram.currency})
        if Footage.objects.filter(store=store, sha256=digest).exists():
            raise IngestError(f"this footage is already in store {store.name!r}")
        camera = _camera_upsert(store=store, planogram=planogram, scene_dir=scene_dir)
        footage = Footage(
            store=store,
            camera=camera,
            sha256=digest,
            size_bytes=footage_path.stat().st_size,
            started_at=started_at,
            duration_s=info.duration,
        )
        save_file(footage.file, f"{camera.name}.mp4", footage_path)
        footage.save()
        created = []
        for entry in visits:
            visit = Visit(
                store=store,
                external_id=f"{digest[:16]}:{token_hash(entry.token)[:16]}",
                token_hash=token_hash(entry.token),
                token_last4=token_last4(entry.token),
                entered_at=started_at + timedelta(seconds=entry.entered_at),
                exited_at=started_at + timedelta(seconds=entry.exited_at),
            )
            gate = scene_dir / entry.gate_image
            if gate.exists():
                save_file(visit.gate_image, f"{visit.code}.png", gate)
            visit.save()
            created.append(visit)
        audit_record(
            actor=actor,
            action="footage.ingested",
            obj=footage,
            store=store,
            after={"camera": camera.name, "visits": len(created), "sha256": digest, "source": "scene"},
        )
        if process:
            from .pipeline import footage_queue

            footage_queue(footage=footage, actor=actor)
    return IngestResult(store=store, camera=camera, footage=footage, visits=created)


def _camera_upsert(*, store: Store, planogram: scene_io.Planogram, scene_dir: Path) -> Camera:
    """The camera and its planogram; products are created or updated by sku."""
    cam = planogram.camera
    camera, created = Camera.objects.get_or_create(
        store=store, name=cam.name, defaults={"width": cam.width, "height": cam.height, "fps": cam.fps}
    )
    if not created and (camera.width, camera.height) != (cam.width, cam.height):
        raise IngestError(
            f"camera {cam.name!r} is {camera.width}x{camera.height}, the scene {cam.width}x{cam.height}"
        )
    products: dict[str, Product] = {}
    for item in planogram.products:
        product, _ = Product.objects.update_or_create(
            store=store,
            sku=item.sku,
            defaults={"name": item.name, "price": item.price, "currency": item.currency},
        )
        image = scene_dir / item.image
        if image.exists() and _image_changed(product, image):
            # the catalog changed (a new pack, or another product under this sku): new reference image
            save_file(product.image, f"{item.sku}.png", image)
            product.save(update_fields=["image"])
        products[item.sku] = product
    for slot in planogram.slots:
        PlanogramSlot.objects.update_or_create(
            camera=camera,
            slot_id=slot.id,
            defaults={
                "product": products[slot.sku],
                "x": slot.x,
                "y": slot.y,
                "w": slot.w,
                "h": slot.h,
                "facings": slot.facings,
                "retired_at": None,
            },
        )
    # slots the new planogram no longer has: not looked at any more, kept for the events on them
    PlanogramSlot.objects.filter(camera=camera, retired_at__isnull=True).exclude(
        slot_id__in=[slot.id for slot in planogram.slots]
    ).update(retired_at=timezone.now())
    return camera


def _image_changed(product: Product, image: Path) -> bool:
    if not product.image:
        return True
    try:
        with product.image.storage.open(product.image.name, "rb") as held:
            return held.read() != image.read_bytes()
    except FileNotFoundError:
        return True


def planogram_of(camera: Camera) -> scene_io.Planogram:
    """The camera's planogram as the tracker's dataclass."""
    slots = list(camera.slots.filter(retired_at__isnull=True).select_related("product").order_by("slot_id"))
    products = {s.product.sku: s.product for s in slots}
    for product in Product.objects.filter(store_id=camera.store_id):
        products.setdefault(product.sku, product)
    return scene_io.Planogram(
        camera=scene_io.Camera(name=camera.name, width=camera.width, height=camera.height, fps=camera.fps),
        currency=camera.store.currency,
        products=tuple(
            scene_io.Product(
                sku=p.sku, name=p.name, price=p.price, currency=p.currency, image=p.image.name or ""
            )
            for p in products.values()
        ),
        slots=tuple(
            scene_io.Slot(id=s.slot_id, sku=s.product.sku, x=s.x, y=s.y, w=s.w, h=s.h, facings=s.facings)
            for s in slots
        ),
    )


def visit_create(
    *,
    store: Store,
    external_id: str,
    token: str,
    entered_at: datetime,
    exited_at: datetime | None,
    actor: Any,
) -> tuple[Visit, bool]:
    """A visit reported by the store system. The same external id twice returns the first
    (created=False); sent again with the exit a first report did not have (the shopper was still
    inside), it records the exit. The same id for another card, another entry or another exit is
    refused (VisitConflict): a store system reusing an id must not move a charge."""
    existing = Visit.objects.filter(store=store, external_id=external_id).first()
    if existing:
        return _visit_again(
            existing, token=token, entered_at=entered_at, exited_at=exited_at, actor=actor
        ), False
    try:
        with db.atomic():
            visit = Visit.objects.create(
                store=store,
                external_id=external_id,
                token_hash=token_hash(token),
                token_last4=token_last4(token),
                entered_at=entered_at,
                exited_at=exited_at,
            )
            audit_record(
                actor=actor,
                action="visit.created",
                obj=visit,
                store=store,
                after={"external_id": external_id},
            )
    except IntegrityError:
        return Visit.objects.get(store=store, external_id=external_id), False
    return visit, True


class VisitConflict(DomainError):
    """The store system sent an id it used before, with different facts; says which field."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def _visit_again(
    visit: Visit, *, token: str, entered_at: datetime, exited_at: datetime | None, actor: Any
) -> Visit:
    if visit.token_hash != token_hash(token):
        raise VisitConflict(f"visit {visit.external_id} was reported with another card", "token")
    if visit.entered_at != entered_at:
        raise VisitConflict(
            f"visit {visit.external_id} was reported entering at {visit.entered_at.isoformat()}", "entered_at"
        )
    if exited_at is None or visit.exited_at == exited_at:
        return visit
    with db.atomic():
        locked = Visit.objects.select_for_update().get(pk=visit.pk)
        if locked.exited_at is not None:
            if locked.exited_at == exited_at:
                return locked
            raise VisitConflict(
                f"visit {visit.external_id} was reported leaving at {locked.exited_at.isoformat()}",
                "exited_at",
            )
        Visit.objects.filter(pk=locked.pk).update(exited_at=exited_at)
        audit_record(
            actor=actor,
            action="visit.exited",
            obj=locked,
            store=locked.store,
            before={"exited_at": None},
            after={"exited_at": exited_at},
        )
        locked.exited_at = exited_at
    return locked


def footage_create(
    *,
    store: Store,
    camera: Camera,
    path: Path,
    name: str,
    started_at: datetime,
    actor: Any,
    process: bool = True,
) -> Footage:
    """Footage uploaded by a store system. Probing failures are kept: the footage row records the error."""
    digest = sha256_of_path(path)
    with db.atomic():
        footage = Footage(
            store=store, camera=camera, sha256=digest, size_bytes=path.stat().st_size, started_at=started_at
        )
        try:
            info = probe(path)
            footage.duration_s = info.duration
        except VideoError:
            footage.duration_s = None  # the tracking task records the error and routes the visits to humans
        save_file(footage.file, name, path)
        footage.save()
        audit_record(
            actor=actor,
            action="footage.uploaded",
            obj=footage,
            store=store,
            after={"sha256": digest, "name": name},
        )
        if process:
            from .pipeline import footage_queue

            footage_queue(footage=footage, actor=actor)
    return footage


__all__ = [
    "FootageStatus",
    "IngestError",
    "IngestResult",
    "footage_create",
    "planogram_of",
    "scene_ingest",
    "visit_create",
]
