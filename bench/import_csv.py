"""Import benchmark: a 200,000-row LoyaltyLion export into a shop of 180,000 members, timed against the time to
only read and parse the same file (the baseline), both in this run. `python -m bench.import_csv [--rows N]`."""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import psycopg

from bench.common import prepared_database
from plugin.config import normalise_database_url
from plugin.db import transaction
from plugin.ledger import verify
from plugin.programme import import_formats as formats
from plugin.services.imports import batches, files

DB = "loyalty_bench_import"
GOAL_SECONDS = 120


def write_export(path: Path, rows: int, members: int) -> int:
    """A LoyaltyLion-shaped export: 90% members (by customer id, or by email alone for one in five), 10% shoppers
    not yet known; returns the points the members' rows carry."""
    expected = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("Customer ID,Email,Points approved,Points pending,Points lifetime,Tier,Birthday\n")
        for i in range(1, rows + 1):
            points = (i * 37) % 5000
            member = i <= members
            customer = 7_000_000_000 + i if member else 8_000_000_000 + i
            by_email_only = member and i % 5 == 0
            cid = "" if by_email_only else str(customer)
            email = f"member{i}@example.com" if member else f"new{i}@example.com"
            out.write(f"{cid},{email},{points},0,{points * 3},Gold,1990-{1 + i % 12:02d}-{1 + i % 28:02d}\n")
            expected += points if member else 0
    return expected


def seed_members(url: str, shop_id: int, members: int) -> None:
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO members (shop_id, customer_id, email, first_name, balance, enrolled_at)
            SELECT %(shop)s, 7000000000 + m, 'member' || m || '@example.com', 'Member', 0, now()
            FROM generate_series(1, %(members)s) AS m
            """,
            {"shop": shop_id, "members": members},
        )
        conn.execute("VACUUM ANALYZE members")


def parse_only(path: Path) -> tuple[float, int]:
    """The baseline: read, decode and parse every row of the file, nothing stored."""
    started = time.perf_counter()
    layout = formats.LAYOUTS["loyaltylion"]
    parsed = 0
    with path.open("rb") as stream:
        facts = files.inspect(stream)
        reader = files.rows(stream, facts.encoding)
        _, cells = next(reader)
        header = formats.read_header(cells, layout)
        for _, cells in reader:
            formats.parse_row(cells, header, layout, "USD")
            parsed += 1
    return time.perf_counter() - started, parsed


def peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run(rows: int = 200_000) -> dict:
    members = rows * 9 // 10
    url, _ = prepared_database(DB)
    url = normalise_database_url(url)
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        shop_id = conn.execute("SELECT id FROM shops").fetchone()[0]
    seed_members(url, shop_id, members)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "loyaltylion-export.csv"
        expected_points = write_export(path, rows, members)
        size_mib = round(path.stat().st_size / 2**20, 1)
        parse_seconds, parsed = parse_only(path)
        rss_after_parse = peak_rss_mib()

        lines_seen = []
        started = time.perf_counter()
        with path.open("rb") as stream:
            checked = batches.run(
                url, shop_id, stream, source="loyaltylion", filename=path.name, dry_run=True, actor="bench"
            )
        dry_seconds = time.perf_counter() - started
        started = time.perf_counter()
        with path.open("rb") as stream:
            outcome = batches.run(
                url,
                shop_id,
                stream,
                source="loyaltylion",
                filename=path.name,
                dry_run=False,
                actor="bench",
                on_progress=lambda line, total: lines_seen.append(line),
            )
        import_seconds = time.perf_counter() - started
    with transaction(url) as session:
        batch = batches.get(session, shop_id, outcome.batch_id)
        dry = batches.get(session, shop_id, checked.batch_id)
        counts = {"matched": batch.matched, "pending": batch.pending, "invalid": batch.invalid}
        posted = batch.points_matched
        mismatches = len(verify(session))
        dry_counts = {"matched": dry.matched, "unmatched": dry.pending, "invalid": dry.invalid}
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        held = conn.execute("SELECT coalesce(sum(balance), 0) FROM members WHERE shop_id = %s", (shop_id,)).fetchone()
    return {
        "rows": rows,
        "file_mib": size_mib,
        "members_before": members,
        "parse_only_seconds": round(parse_seconds, 1),
        "parsed_rows": parsed,
        "dry_run_seconds": round(dry_seconds, 1),
        "import_seconds": round(import_seconds, 1),
        "rows_per_second": round(rows / import_seconds),
        "ratio_to_parse": round(import_seconds / parse_seconds, 1),
        "goal_seconds": GOAL_SECONDS,
        "progress_reports": len(lines_seen),
        "counts": counts,
        "dry_run_counts": dry_counts,
        "points_posted": posted,
        "points_expected": expected_points,
        "balances_sum": int(held[0]),
        "verify_ledger_mismatches": mismatches,
        "peak_rss_mib_after_parse": rss_after_parse,
        "peak_rss_mib_after_import": peak_rss_mib(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    print(json.dumps(run(args.rows), indent=1))


if __name__ == "__main__":
    main()
