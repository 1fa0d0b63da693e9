"""Importing a CSV file: a batch per file, read in chunks of one transaction each, resumable after a crash."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any, BinaryIO

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from plugin.db import among, transaction
from plugin.models import Member, Posting, Shop, utcnow
from plugin.programme import import_formats as formats
from plugin.programme.rewards import catalogue
from plugin.services.imports import bulk, files, openings
from plugin.services.imports.tables import (
    CANCELLED,
    DONE,
    INVALID,
    MATCHED,
    PENDING,
    RUNNING,
    UNDONE,
    UNDONE_ROW,
    UNMATCHED,
    ImportBatch,
    ImportRow,
)

CHUNK_ROWS = 1000
Progress = Callable[[int, int], None]  # (line reached, lines in the file)


class ImportRefused(Exception):
    """A request the import cannot carry out; `status` and `code` say how the front doors answer."""

    status, code = 400, "invalid_import"


class NotFound(ImportRefused):
    status, code = 404, "not_found"


class Conflict(ImportRefused):
    status, code = 409, "import_conflict"


class InvalidFile(ImportRefused):
    status, code = 422, "invalid_file"


@dataclass(frozen=True)
class Outcome:
    batch_id: int
    resumed: bool  # a batch of this very file existed already and was continued (or was already complete)


def layout_for(source: str) -> formats.Layout:
    layout = formats.LAYOUTS.get((source or "").strip().lower())
    if layout is None:
        raise ImportRefused(f"source must be one of {', '.join(formats.LAYOUTS)}")
    return layout


def run(
    database_url: str,
    shop_id: int,
    stream: BinaryIO,
    *,
    source: str,
    filename: str,
    dry_run: bool,
    actor: str,
    on_progress: Progress | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Outcome:
    """Import (or, with dry_run, only check) a CSV file. Running it again with the same file resumes the same
    batch from its last committed chunk, so a crash or a retry never posts a row twice."""
    layout = layout_for(source)
    try:
        facts = files.inspect(stream)
    except files.FileError as error:
        raise InvalidFile(str(error)) from None
    reader = files.rows(stream, facts.encoding)
    try:
        return _run(database_url, shop_id, reader, facts, layout, filename, dry_run, actor, on_progress, chunk_rows)
    finally:
        reader.close()  # hands the stream back to its owner, whatever happened


def _run(database_url, shop_id, reader, facts, layout, filename, dry_run, actor, on_progress, chunk_rows) -> Outcome:
    try:
        _, header_cells = next(reader, (0, []))
        if not header_cells:
            raise InvalidFile("the file has no header row")
        header = formats.read_header(header_cells, layout)
    except (files.FileError, formats.HeaderError) as error:
        raise InvalidFile(str(error)) from None

    with transaction(database_url) as session:
        shop = session.get(Shop, shop_id)
        batch, resumed = _open_batch(session, shop, layout, filename, facts, header, dry_run, actor)
        batch_id, done, currency = batch.id, batch.status != RUNNING, shop.currency
    if done:
        return Outcome(batch_id, resumed=True)

    chunk: list[tuple[int, list[str]]] = []
    try:
        for line, cells in reader:
            chunk.append((line, cells))
            if len(chunk) >= chunk_rows:
                _import_chunk(database_url, shop_id, batch_id, layout, header, currency, chunk, on_progress)
                chunk = []
        if chunk:
            _import_chunk(database_url, shop_id, batch_id, layout, header, currency, chunk, on_progress)
    except files.FileError as error:
        raise InvalidFile(f"{error}; rows before it were kept, fix the file and import it as a new batch") from None
    with transaction(database_url) as session:
        batch = _locked_batch(session, shop_id, batch_id)
        if batch.status == RUNNING:
            batch.status, batch.finished_at, batch.last_line = DONE, utcnow(), max(batch.last_line, facts.lines)
    if on_progress:
        on_progress(facts.lines, facts.lines)
    return Outcome(batch_id, resumed=resumed)


def _open_batch(session, shop, layout, filename, facts, header, dry_run, actor) -> tuple[ImportBatch, bool]:
    if not dry_run:
        existing = session.execute(
            select(ImportBatch)
            .where(
                ImportBatch.shop_id == shop.id,
                ImportBatch.file_sha256 == facts.sha256,
                ImportBatch.dry_run.is_(False),
                ImportBatch.status != UNDONE,
            )
            .with_for_update()
        ).scalar_one_or_none()
        if existing is not None:
            if existing.source != layout.key:
                raise Conflict(f"this file is batch {existing.id}, imported as {existing.source}; undo it first")
            return existing, True
    batch = ImportBatch(
        shop_id=shop.id,
        source=layout.key,
        filename=formats.CONTROL.sub("?", filename or "upload.csv")[:255],  # PostgreSQL text refuses NUL
        file_sha256=facts.sha256,
        encoding=facts.encoding,
        dry_run=dry_run,
        status=RUNNING,
        lines_total=facts.lines,
        last_line=1,
        rows_read=0,
        matched=0,
        pending=0,
        invalid=0,
        points_matched=0,
        points_pending=0,
        unknown_columns=list(header.unknown),
        actor=actor[:120],
        created_at=utcnow(),
    )
    session.add(batch)
    session.flush()
    return batch, False


def _locked_batch(session: Session, shop_id: int, batch_id: int) -> ImportBatch:
    batch = session.execute(
        select(ImportBatch)
        .where(ImportBatch.shop_id == shop_id, ImportBatch.id == batch_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if batch is None:
        raise NotFound(f"no import batch {batch_id}")
    return batch


def _import_chunk(database_url, shop_id, batch_id, layout, header, currency, chunk, on_progress) -> None:
    with transaction(database_url) as session:
        # The lock makes two runners of one batch take turns; the second skips what the first committed.
        batch = _locked_batch(session, shop_id, batch_id)
        if batch.status != RUNNING:
            return
        todo = [(line, cells) for line, cells in chunk if line > batch.last_line]
        if todo:
            first_chunk = batch.rows_read == 0
            _store_rows(session, shop_id, batch, layout, header, currency, todo)
            batch.last_line = todo[-1][0]
            if first_chunk and bulk.on_postgresql(session):
                # Statistics of a table that just grew from nothing, so the planner looks rows up by shopper
                # and member (their unique indexes) rather than scanning the batch for every chunk.
                session.execute(text("ANALYZE import_rows"))
        reached, total = batch.last_line, batch.lines_total
    if on_progress:
        on_progress(reached, total)


def _store_rows(session, shop_id, batch, layout, header, currency, todo) -> None:
    rows: list[dict[str, Any]] = []
    parsed: list[tuple[dict[str, Any], formats.Opening]] = []
    for line, cells in todo:
        row = _empty_row(shop_id, batch.id, line)
        try:
            opening = formats.parse_row(cells, header, layout, currency)
        except formats.RowError as error:
            row.update(status=INVALID, error=str(error))
        else:
            row.update(
                status=PENDING,
                shopper_key=opening.shopper_key,
                customer_id=opening.customer_id,
                email=opening.email,
                points=opening.points,
                lifetime_points=opening.lifetime_points,
                lifetime_spend_minor=opening.lifetime_spend_minor,
                birthday=opening.birthday,
                tier=(opening.tier or None) and opening.tier[:120],
                expires_on=opening.expires_on,
            )
            parsed.append((row, opening))
        rows.append(row)

    _mark_duplicate_shoppers(session, shop_id, batch.id, parsed)
    parsed = [(row, opening) for row, opening in parsed if row["status"] != INVALID]
    _match_members(session, shop_id, parsed)
    _mark_duplicate_members(session, shop_id, batch.id, parsed)

    now = utcnow()
    to_post = []
    for row in rows:
        if row["status"] == INVALID:
            continue
        if row["member_id"] is not None:
            row.update(status=MATCHED, matched_at=now)
            to_post.append(openings.Opening(row["member_id"], row["line"], row["points"]))
        elif batch.dry_run:
            row["status"] = UNMATCHED
    if to_post and not batch.dry_run:
        note = openings.history_note(batch, layout.title)
        openings.post(session, shop_id, batch, to_post, note, batch.actor)
    bulk.copy_rows(session, ImportRow.__table__, rows)

    batch.rows_read += len(rows)
    for row in rows:
        if row["status"] == INVALID:
            batch.invalid += 1
        elif row["status"] == MATCHED:
            batch.matched += 1
            batch.points_matched += row["points"]
        else:
            batch.pending += 1
            batch.points_pending += row["points"]


def _empty_row(shop_id: int, batch_id: int, line: int) -> dict[str, Any]:
    return {
        "shop_id": shop_id,
        "batch_id": batch_id,
        "line": line,
        "status": INVALID,
        "shopper_key": None,
        "customer_id": None,
        "email": None,
        "member_id": None,
        "points": None,
        "lifetime_points": None,
        "lifetime_spend_minor": None,
        "birthday": None,
        "tier": None,
        "expires_on": None,
        "error": None,
        "matched_at": None,
    }


def _invalidate(row: dict[str, Any], reason: str) -> None:
    row.update(status=INVALID, error=reason, shopper_key=None, member_id=None)


def _mark_duplicate_shoppers(session, shop_id, batch_id, parsed) -> None:
    """The second and later rows of one shopper (same customer id, or same email) are invalid; the first stays."""
    keys = {opening.shopper_key for _, opening in parsed}
    earlier = (
        dict(
            session.execute(
                select(ImportRow.shopper_key, ImportRow.line).where(
                    ImportRow.shop_id == shop_id,
                    ImportRow.batch_id == batch_id,
                    among(session, ImportRow.shopper_key, keys),
                )
            ).all()
        )
        if keys
        else {}
    )
    for row, opening in parsed:
        first = earlier.setdefault(opening.shopper_key, row["line"])
        if first != row["line"]:
            _invalidate(row, f"duplicate shopper: the same {_what(opening)} is on line {first}")


def _what(opening: formats.Opening) -> str:
    return "customer id" if opening.customer_id is not None else "email"


def _match_members(session, shop_id, parsed) -> None:
    """Known members of this shop only: by customer id when the row has one, else by email."""
    ids = {opening.customer_id for _, opening in parsed if opening.customer_id is not None}
    emails = {opening.email for _, opening in parsed if opening.customer_id is None}
    by_id = (
        dict(
            session.execute(
                select(Member.customer_id, Member.id).where(
                    Member.shop_id == shop_id, among(session, Member.customer_id, ids)
                )
            ).all()
        )
        if ids
        else {}
    )
    by_email: dict[str, int] = {}
    if emails:
        found = session.execute(
            select(Member.email, Member.id)
            # Whatever the case the shop stored the address in (index ix_members_shop_id_lower_email).
            .where(Member.shop_id == shop_id, among(session, _lower_email(), emails))
            .order_by(Member.id.desc())
        ).all()
        by_email = {email.lower(): member_id for email, member_id in found}  # the oldest member wins
    for row, opening in parsed:
        if opening.customer_id is not None:
            row["member_id"] = by_id.get(opening.customer_id)
        else:
            row["member_id"] = by_email.get(opening.email)


def _mark_duplicate_members(session, shop_id, batch_id, parsed) -> None:
    """Two rows (one by id, one by email) reaching the same member: the later one is a duplicate."""
    members = {row["member_id"] for row, _ in parsed if row["member_id"] is not None}
    if not members:
        return
    earlier = dict(
        session.execute(
            select(ImportRow.member_id, ImportRow.line).where(
                ImportRow.shop_id == shop_id,
                ImportRow.batch_id == batch_id,
                among(session, ImportRow.member_id, members),
            )
        ).all()
    )
    for row, _ in parsed:
        if row["member_id"] is None or row["status"] == INVALID:
            continue
        first = earlier.setdefault(row["member_id"], row["line"])
        if first != row["line"]:
            _invalidate(row, f"duplicate shopper: line {first} is the same member")


def undo(database_url: str, shop_id: int, batch_id: int, actor: str, reason: str, chunk_rows: int = CHUNK_ROWS) -> int:
    """Reverse every opening balance of a batch with further `import` postings, and cancel its pending rows.

    Audited on the batch (who, when, why). Running it again after a crash finishes the job; returns the points
    taken back by this call.
    """
    if not reason or not reason.strip():
        raise ImportRefused("a reason is required to undo an import")
    if formats.CONTROL.search(reason):
        raise ImportRefused("the reason must not contain control characters")
    with transaction(database_url) as session:
        batch = _locked_batch(session, shop_id, batch_id)
        if batch.dry_run:
            raise Conflict(f"batch {batch_id} is a dry run: it posted nothing to undo")
        if batch.status != UNDONE:
            batch.status, batch.undone_at, batch.undone_by, batch.undo_reason = UNDONE, utcnow(), actor, reason.strip()
            session.execute(
                update(ImportRow)
                .where(ImportRow.shop_id == shop_id, ImportRow.batch_id == batch_id, ImportRow.status == PENDING)
                .values(status=CANCELLED)
                .execution_options(synchronize_session=False)
            )
    taken = 0
    after_line = 0  # rows are taken in line order, so each chunk starts where the last one ended
    while True:
        with transaction(database_url) as session:
            batch = _locked_batch(session, shop_id, batch_id)
            rows = session.execute(
                select(ImportRow.id, ImportRow.line, ImportRow.member_id, ImportRow.points)
                .where(
                    ImportRow.shop_id == shop_id,
                    ImportRow.batch_id == batch_id,
                    ImportRow.line > after_line,
                    ImportRow.status == MATCHED,
                )
                .order_by(ImportRow.line)
                .limit(chunk_rows)
            ).all()
            if not rows:
                return taken
            after_line = rows[-1].line
            note = f"undo of import batch {batch.id} ({formats.LAYOUTS[batch.source].title}, "
            note += f"{batch.created_at.date().isoformat()}) by {batch.undone_by}: {batch.undo_reason}"
            # What the ledger holds for this batch, not what the file said: only posted openings are reversed.
            posted = set(
                session.scalars(
                    select(Posting.idempotency_key).where(
                        Posting.shop_id == shop_id,
                        Posting.idempotency_key.in_([openings.opening_key(batch_id, r.line) for r in rows]),
                    )
                )
            )
            reversals = [
                openings.Opening(r.member_id, r.line, -(r.points or 0))
                for r in rows
                if openings.opening_key(batch_id, r.line) in posted
            ]
            taken -= openings.post(session, shop_id, batch, reversals, note, batch.undone_by or actor, undo=True)
            session.execute(
                update(ImportRow)
                .where(ImportRow.shop_id == shop_id, ImportRow.id.in_([r.id for r in rows]))
                .values(status=UNDONE_ROW)
                .execution_options(synchronize_session=False)
            )


def get(session: Session, shop_id: int, batch_id: int) -> ImportBatch:
    batch = session.execute(
        select(ImportBatch).where(ImportBatch.shop_id == shop_id, ImportBatch.id == batch_id)
    ).scalar_one_or_none()
    if batch is None:
        raise NotFound(f"no import batch {batch_id}")
    return batch


def listing(session: Session, shop_id: int, limit: int = 50) -> list[dict[str, Any]]:
    batches = session.scalars(
        select(ImportBatch).where(ImportBatch.shop_id == shop_id).order_by(ImportBatch.id.desc()).limit(limit)
    )
    return [summary(b) for b in batches]


def summary(batch: ImportBatch) -> dict[str, Any]:
    return {
        "id": batch.id,
        "source": batch.source,
        "filename": batch.filename,
        "dry_run": batch.dry_run,
        "status": batch.status,
        "encoding": batch.encoding,
        "progress": {"line": batch.last_line, "lines": batch.lines_total},
        "rows": batch.rows_read,
        "matched": batch.matched,
        "unmatched" if batch.dry_run else "pending": batch.pending,
        "invalid": batch.invalid,
        "points_matched": batch.points_matched,
        "points_unmatched" if batch.dry_run else "points_pending": batch.points_pending,
        "unknown_columns": batch.unknown_columns,
        "created_at": batch.created_at.isoformat(),
        "by": batch.actor,
        "finished_at": batch.finished_at.isoformat() if batch.finished_at else None,
        "undone": (
            {"at": batch.undone_at.isoformat(), "by": batch.undone_by, "reason": batch.undo_reason}
            if batch.undone_at
            else None
        ),
    }


def report(session: Session, shop: Shop, batch: ImportBatch) -> dict[str, Any]:
    """The dry run's answer (and any batch's): counts, points and their money value, the ten largest balances."""
    largest = session.execute(
        select(ImportRow.line, ImportRow.customer_id, ImportRow.email, ImportRow.points, ImportRow.status)
        .where(
            ImportRow.shop_id == shop.id,
            ImportRow.batch_id == batch.id,
            ImportRow.status.in_((MATCHED, PENDING, UNMATCHED)),
        )
        .order_by(ImportRow.points.desc(), ImportRow.line)
        .limit(10)
    ).all()
    spend_minor = session.execute(
        select(func.coalesce(func.sum(ImportRow.lifetime_spend_minor), 0)).where(
            ImportRow.shop_id == shop.id, ImportRow.batch_id == batch.id, ImportRow.status != INVALID
        )
    ).scalar_one()
    points = batch.points_matched + batch.points_pending
    rate = formats.value_per_point(catalogue(shop.settings))
    exponent = formats.currency_exponent(shop.currency)
    quantum = Decimal(1).scaleb(-exponent)
    return {
        **summary(batch),
        "points": points,
        "money_value": str((points * rate).quantize(quantum, ROUND_DOWN)) if rate is not None else None,
        "money_value_note": "points times the best fixed-amount reward's value per point, rounded down",
        "currency": shop.currency,
        "lifetime_spend": str(Decimal(int(spend_minor)).scaleb(-exponent).quantize(quantum)),
        "largest": [
            {"line": r.line, "customer_id": r.customer_id, "email": r.email, "points": r.points, "status": r.status}
            for r in largest
        ],
        "errors": batch.invalid,
    }


ERROR_COLUMNS = ("line", "reason")


def error_file(session: Session, shop_id: int, batch_id: int) -> Iterator[str]:
    """The per-row error file, streamed: line number and reason; every cell neutralised against formulas."""
    get(session, shop_id, batch_id)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(ERROR_COLUMNS)
    rows = session.execute(
        select(ImportRow.line, ImportRow.error)
        .where(ImportRow.shop_id == shop_id, ImportRow.batch_id == batch_id, ImportRow.status == INVALID)
        .order_by(ImportRow.line)
        .execution_options(yield_per=2000)
    )
    for count, (line, reason) in enumerate(rows, 1):
        writer.writerow([formats.neutralise(line), formats.neutralise(reason)])
        if count % 2000 == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def _lower_email():
    """lower(members.email), typed, so PostgreSQL's `= ANY(array)` knows the array's type."""
    return func.lower(Member.email, type_=Member.email.type)
