"""Reports at scale: every report and the tie-out for a shop of 1M members and 20M postings over two years.

Each report is timed through the admin API (a session token, the real app), beside the same reports on a
2,000-member shop seeded alike in the same run (the baseline). The seed bypasses the ledger's triggers (as a
restore would), so the per-day roll-ups are rebuilt from the postings first (timed); then postings are made
through `ledger.post`, so the trigger's incremental path is in the figures too, and the tie-out must still be exact.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import jwt
import psycopg
from sqlalchemy import text
from sqlalchemy.orm import Session

from bench import seed
from bench.common import prepared_database
from bench.harness import SECRET, SHOP, database_exists, database_url, environment, flask_cli
from plugin import create_app, ledger
from plugin.config import Settings
from plugin.db import engine_for, transaction
from plugin.models import Shop
from plugin.services import order_rollups, report_rollups, reports

BIG_DB = "loyalty_bench_reports"
SMALL_DB = "loyalty_bench_reports_small"
API_KEY = "bench-api-key"
SPREAD_DAYS = 730
GOAL_SECONDS = 5.0
EXTRA_POSTINGS = 2000


def _sqlalchemy(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://")


def prepared(name: str, members: int) -> tuple[str, float, float]:
    """A database with `members` seeded members over two years (reused when complete), its roll-ups rebuilt.

    Returns the URL, the seconds the seed took (0 when reused) and the seconds the rebuild took."""
    url = database_url(name)
    seeded = 0.0
    reuse = False
    if database_exists(name):
        with psycopg.connect(url) as conn:
            reuse = conn.execute("SELECT count(*) FROM members").fetchone()[0] == members
    if reuse:
        flask_cli(environment(url), "db-upgrade")  # a database left by an earlier revision of the code
    else:
        url, _ = prepared_database(name)
        started = time.perf_counter()
        seed.seed(url, 1, members, spread_days=SPREAD_DAYS)
        seeded = time.perf_counter() - started
    sell(url)
    started = time.perf_counter()
    with transaction(_sqlalchemy(url)) as session:
        report_rollups.rebuild(session, session.get(Shop, 1))
        order_rollups.rebuild(session, 1, session.get(Shop, 1).time_zone)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE member_order_months")  # as after a restore: the planner needs its statistics
    return url, seeded, time.perf_counter() - started


def sell(url: str) -> None:
    """Give the seed's orders what the KPIs read, once: sales (the order's points, as money), and for every third
    member an issued fixed-amount reward 30 days ago whose code their fourth order used (redeemers, ROI).

    Written without triggers, as the seed is; the roll-ups are rebuilt after."""
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT count(*) FROM redemptions").fetchone()[0]:
            return
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute("UPDATE orders SET sales = (lot ->> 'points')::numeric")
            conn.execute(
                """
                INSERT INTO redemptions (shop_id, member_id, reward, reward_id, points, status, code, actor, attempts,
                                         created_at, starts_at)
                SELECT shop_id, id, '{"id": "five", "kind": "fixed_amount", "amount": "5.00", "points": 500}', 'five',
                       500, 'issued', 'BENCH-' || id, 'bench', 0, now() - interval '30 days', now() - interval '30 days'
                FROM members WHERE id % 3 = 0
                """
            )
            conn.execute(
                "UPDATE orders SET reward_code = 'BENCH-' || member_id WHERE member_id % 3 = 0 AND order_id % 10 = 4"
            )
        for table in ("orders", "redemptions"):
            conn.execute(f"VACUUM ANALYZE {table}")


def kpis_from_rollup_and_orders(url: str) -> dict:
    """The KPIs' member figures for last month read from the roll-up, beside the same figures read from every order
    (the path before the roll-up, still SQLite's): seconds each, and whether they agree."""
    seconds, answers = {}, {}
    with transaction(_sqlalchemy(url)) as session:
        shop = session.get(Shop, 1)
        today = datetime.now(UTC).date()
        query = reports.load_query({"month": (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")})
        period = reports.period_of(shop, query)
        for name, read in (("rollup", reports._buyers), ("orders", reports._buyers_from_orders)):
            started = time.perf_counter()
            answers[name] = read(session, shop, period)
            seconds[name] = round(time.perf_counter() - started, 2)
    return {
        "kpis_members_rollup_seconds": seconds["rollup"],
        "kpis_members_orders_seconds": seconds["orders"],
        "kpis_rollup_ratio_to_orders": round(seconds["rollup"] / max(seconds["orders"], 0.01), 2),
        "kpis_rollup_equals_orders": answers["rollup"] == answers["orders"],
    }


def post_through_the_trigger(url: str, count: int, trigger: bool = True) -> tuple[float, int]:
    """Earn postings made the normal way (the trigger writes their deltas), then compacted as the sweeper does.

    Returns the seconds the postings took and the deltas left after compaction (0). With `trigger=False` the
    reports' trigger is disabled inside the transaction (the baseline: what a posting costs without it)."""
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")
    with Session(engine_for(_sqlalchemy(url))) as session, session.begin():
        if not trigger:
            session.execute(text("ALTER TABLE postings DISABLE TRIGGER postings_day_delta"))
        started = time.perf_counter()
        for n in range(count):
            entry = ledger.Entry(
                member_id=1 + n * 37 % 1000, kind="earn", points=7, source_type="order", source_id=f"bench-{n}",
                idempotency_key=f"bench-reports:{stamp}:{n}", rule_version="bench",
            )  # fmt: skip
            ledger.post(session, 1, entry)
        elapsed = time.perf_counter() - started
        if not trigger:
            session.rollback()  # the baseline's postings never happened: the roll-ups stay exact
    report_rollups.compact_all(_sqlalchemy(url))
    with psycopg.connect(url) as conn:
        waiting = conn.execute("SELECT count(*) FROM ledger_day_deltas").fetchone()[0]
    return elapsed, waiting


def client_for(url: str):
    settings = Settings(database_url=_sqlalchemy(url), shopify_api_key=API_KEY, shopify_api_secret=SECRET)
    return create_app(settings).test_client()


def token() -> str:
    now = int(time.time())
    claims = {
        "iss": f"https://{SHOP}/admin", "dest": f"https://{SHOP}", "aud": API_KEY, "sub": "1",
        "exp": now + 600, "nbf": now - 5, "iat": now, "jti": "bench-reports", "sid": "bench",
    }  # fmt: skip
    return jwt.encode(claims, SECRET, algorithm="HS256")


def calls(today: date) -> dict[str, str]:
    """The report calls timed: each report for last month, the last 12 months and the longest range allowed."""
    last_month = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    five_years = today.replace(year=today.year - 5) + timedelta(days=1)  # five years, the longest allowed
    ranges = {"month": f"month={last_month}", "year": "", "five_years": f"start={five_years}&end={today}"}
    paths = {}
    for name, query in ranges.items():
        paths[f"liability_{name}"] = f"liability?{query}"
        paths[f"breakage_{name}"] = f"breakage?{query}"
        paths[f"journal_csv_{name}"] = f"journal?{query}&format=csv"
        paths[f"kpis_{name}"] = f"kpis?{query}"
    paths["liability_deep_tie_out_year"] = "liability?deep=true"
    return paths


def timed_reports(url: str) -> tuple[dict[str, float], dict]:
    client = client_for(url)
    headers = {"Authorization": f"Bearer {token()}"}
    seconds: dict[str, float] = {}
    answers: dict = {}
    client.get("/api/admin/reports/kpis?month=2020-01", headers=headers)  # warms the app and the pool
    for name, path in calls(datetime.now(UTC).date()).items():
        started = time.perf_counter()
        response = client.get(f"/api/admin/reports/{path}", headers=headers)
        seconds[name] = round(time.perf_counter() - started, 2)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}: {response.get_data(as_text=True)[:500]}")
        if name.startswith("liability") and name.endswith("year"):
            answers[name] = response.get_json()
    return seconds, answers


def run(members: int = 1_000_000) -> dict:
    small_url, _, _ = prepared(SMALL_DB, 2000)
    big_url, seed_seconds, rebuild_seconds = prepared(BIG_DB, members)
    untriggered_seconds, _ = post_through_the_trigger(big_url, EXTRA_POSTINGS, trigger=False)
    posted_seconds, deltas_left = post_through_the_trigger(big_url, EXTRA_POSTINGS)
    with psycopg.connect(big_url) as conn:
        postings = conn.execute("SELECT count(*) FROM postings").fetchone()[0]
        days = conn.execute("SELECT count(*) FROM ledger_days").fetchone()[0]
        size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
    small, _ = timed_reports(small_url)
    big, answers = timed_reports(big_url)
    compared = kpis_from_rollup_and_orders(big_url)
    fast = {name: value for name, value in big.items() if "deep" not in name}
    slowest = max(fast, key=fast.get)
    tie = answers["liability_year"]["tie_out"]
    deep = answers["liability_deep_tie_out_year"]["tie_out"]
    return {
        "members": members,
        "postings": postings,
        "ledger_days_rows": days,
        "database_size": size,
        "spread_days": SPREAD_DAYS,
        "seed_seconds": round(seed_seconds, 1),
        "rollup_rebuild_seconds": round(rebuild_seconds, 1),
        "trigger_postings": EXTRA_POSTINGS,
        "trigger_postings_seconds": round(posted_seconds, 2),
        "untriggered_postings_seconds": round(untriggered_seconds, 2),
        "trigger_cost_ratio": round(posted_seconds / untriggered_seconds, 2),
        "deltas_waiting_after_compaction": deltas_left,
        "seconds_big": big,
        "seconds_small": small,
        "slowest_report": slowest,
        "slowest_seconds": fast[slowest],
        "slowest_ratio_to_small": round(fast[slowest] / max(small[slowest], 0.01), 1),
        "goal_seconds": GOAL_SECONDS,
        "goal_met": fast[slowest] < GOAL_SECONDS,
        "tie_out": {key: tie[key] for key in ("closing", "posted_after_end", "ledger_balances", "difference", "ok")},
        "deep_tie_out": {key: deep.get(key) for key in ("postings_before_end", "deep_difference", "ok")},
        "closing_points": answers["liability_year"]["closing"]["points"],
        **compared,
    }
