"""Decision exports for auditors, as CSV or JSON Lines, in constant memory.

The page (a StreamingHttpResponse) and `manage.py export_decisions` both stream
`export_chunks`, which pages through `selectors.decisions_filtered` by keyset
(`id > last ORDER BY id LIMIT n`, plain tuples from `values_list`): no server-side
cursor held open, no model instances, one page in memory at a time. The export
stops at the newest decision that existed when it started, so it is a fixed set
even while reviewers keep deciding. Every export is itself an audit event.
"""

from __future__ import annotations

import csv
import io
import json
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from django.db import connection, connections
from django.db.models import CharField, F, Func, Max, TextField
from django.db.models.functions import Cast

from .. import selectors
from ..forms_audit import describe_filters
from ..models import Decision
from .audit import audit_record

FORMATS = ("csv", "jsonl")
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}
PAGE_SIZE = 5000

# Column name -> the value it reads. Amounts are integers in minor units (cents).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("decision", "code"),
    ("created_at", "created_at"),
    ("store", "transaction__store__name"),
    ("transaction", "transaction__code"),
    ("visit", "transaction__visit__external_id"),
    ("token_last4", "transaction__visit__token_last4"),
    ("reviewer", "reviewer__username"),
    ("outcome", "outcome"),
    ("amount_minor", "amount"),
    ("currency", "currency"),
    ("proposed_amount_minor", "transaction__proposed_amount"),
    ("diff", "diff"),
    ("note", "note"),
    ("time_spent_ms", "time_spent_ms"),
    ("by_supervisor", "by_supervisor"),
    ("task_kind", "task__kind"),
    ("undone_at", "undo__created_at"),  # the reviewer took it back (review.decision_undo); else empty
)
HEADER = tuple(name for name, _ in COLUMNS)
_DECISION = HEADER.index("decision")
_CREATED = HEADER.index("created_at")
_TRANSACTION = HEADER.index("transaction")
_DIFF = HEADER.index("diff")
_NOTE = HEADER.index("note")
_BY_SUPERVISOR = HEADER.index("by_supervisor")
_UNDONE = HEADER.index("undone_at")
# A spreadsheet runs a cell that starts with one of these as a formula: CSV notes get a quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# PostgreSQL formats the timestamp itself: parsing it into a datetime only to print it
# again costs more per row than the whole query.
_PG_ISO_UTC = """to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""


def _selected() -> list[Any]:
    """What values_list reads: codes, the diff and (on PostgreSQL) the time as text.

    Building a UUID, a datetime or parsed JSON for every row only to turn it back
    into text costs more than the rest of the row.
    """
    fields: list[Any] = ["id"]
    for name, field in COLUMNS:
        if name in ("decision", "transaction"):
            fields.append(Cast(field, output_field=CharField()))
        elif name == "diff":
            fields.append(Cast(field, output_field=TextField()))
        elif name in ("created_at", "undone_at") and connection.vendor == "postgresql":
            fields.append(Func(F(field), template=_PG_ISO_UTC, output_field=CharField()))
        else:
            fields.append(field)
    return fields


def _dashed(code: str) -> str:
    """SQLite keeps a UUID as 32 hex digits; PostgreSQL's text already has the dashes."""
    if len(code) == 32:
        return f"{code[:8]}-{code[8:12]}-{code[12:16]}-{code[16:20]}-{code[20:]}"
    return code


def _pages(qs: Any, selected: list[Any], page_size: int) -> Iterator[list[tuple[Any, ...]]]:
    """Keyset pages of `qs` (ordered by id): `id > last ORDER BY id LIMIT page_size`."""
    last = 0
    while True:
        page = list(qs.filter(id__gt=last).values_list(*selected)[:page_size])
        if page:
            yield page
        if len(page) < page_size:
            return
        last = page[-1][0]


def _prefetched(pages: Iterator[list[tuple[Any, ...]]]) -> Iterator[list[tuple[Any, ...]]]:
    """The same pages, each fetched by a thread while the caller formats the one before.

    The database's share of a page (the query, the transfer) runs with the GIL
    released, so fetching and formatting overlap. The thread has its own database
    connection, closed when it ends; closing this generator (a client that went
    away) stops it after the page in hand.
    """
    ready: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()
    done = object()

    def fetch() -> None:
        try:
            for page in pages:
                while not stop.is_set():
                    try:
                        ready.put(page, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put(done)
        except BaseException as exc:  # handed to the caller, who raises it
            ready.put(exc)
        finally:
            connections.close_all()  # this thread's connections only

    worker = threading.Thread(target=fetch, name="export-prefetch", daemon=True)
    worker.start()
    try:
        while (item := ready.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=30)


def decision_rows(
    *, filters: dict[str, Any], page_size: int = PAGE_SIZE, on_page: Callable[[int], None] | None = None
) -> Iterator[list[Any]]:
    """Matching decisions as lists in HEADER order, oldest id first.

    Codes and created_at come as text, the diff as JSON text. `on_page(n)` is called
    with each page's row count (progress, totals). Pages are fetched ahead on a
    thread, except inside a transaction: another connection could not see its rows.
    """
    upper = Decision.objects.aggregate(top=Max("id"))["top"]
    if upper is None:
        return
    base = selectors.decisions_filtered(**filters).filter(id__lte=upper).order_by("id")
    pages = _pages(base, _selected(), page_size)
    if not connection.in_atomic_block:
        pages = _prefetched(pages)
    text_time = connection.vendor == "postgresql"
    for page in pages:
        if on_page is not None:
            on_page(len(page))
        for row in page:
            values = list(row[1:])
            values[_DECISION] = _dashed(values[_DECISION])
            if not text_time:
                values[_CREATED] = values[_CREATED].isoformat(timespec="microseconds")
                if values[_UNDONE] is not None:
                    values[_UNDONE] = values[_UNDONE].isoformat(timespec="microseconds")
            values[_TRANSACTION] = _dashed(values[_TRANSACTION])
            yield values


def _csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_chunks(rows: Iterator[list[Any]], *, rows_per_chunk: int = PAGE_SIZE) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    n = 0
    for values in rows:
        values[_NOTE] = _csv_cell(values[_NOTE])
        values[_BY_SUPERVISOR] = "true" if values[_BY_SUPERVISOR] else "false"
        writer.writerow(values)
        n += 1
        if n == rows_per_chunk:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
            n = 0
    yield buffer.getvalue().encode()


def jsonl_chunks(rows: Iterator[list[Any]], *, rows_per_chunk: int = PAGE_SIZE) -> Iterator[bytes]:
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    lines: list[str] = []
    loads = json.loads
    for values in rows:
        diff = values[_DIFF]
        values[_DIFF] = [] if diff == "[]" else loads(diff)
        lines.append(dumps(dict(zip(HEADER, values, strict=True))))
        if len(lines) == rows_per_chunk:
            lines.append("")
            yield "\n".join(lines).encode()
            lines = []
    if lines:
        lines.append("")
        yield "\n".join(lines).encode()


def export_chunks(
    *,
    filters: dict[str, Any],
    fmt: str,
    page_size: int = PAGE_SIZE,
    on_page: Callable[[int], None] | None = None,
) -> Iterator[bytes]:
    """The export as byte chunks of about one page each."""
    rows = decision_rows(filters=filters, page_size=page_size, on_page=on_page)
    if fmt == "csv":
        return csv_chunks(rows, rows_per_chunk=page_size)
    if fmt == "jsonl":
        return jsonl_chunks(rows, rows_per_chunk=page_size)
    raise ValueError(f"unknown export format {fmt!r}")


def export_record(*, actor: Any, filters: dict[str, Any], fmt: str, via: str) -> str:
    """Log that an export was made (who, how, which filters); returns the export's code.

    Called before the first byte is sent: an export that fails half-way is still on record.
    """
    code = str(uuid.uuid4())
    audit_record(
        actor=actor,
        action="export.decisions",
        object_type="export",
        object_code=code,
        store=filters.get("store"),
        data={"format": fmt, "via": via, "filters": describe_filters(filters)},
    )
    return code
