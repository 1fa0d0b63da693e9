"""Referral figures per shop and per advocate, and the referrals support reviews (blocked ones with reasons)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from plugin.models import Member, Referral, ReferralVisit
from plugin.programme import referrals as rules

COUNTS = ("links_opened", "friend_codes_issued", "first_orders", "rewards_given", "rewards_pending", "void", "reversed")
BLOCKED = tuple(f"blocked_{reason}" for reason in rules.REASONS)
COLUMNS = ("advocate_member_id", "customer_id", "email", *COUNTS, "blocked", *BLOCKED, "points_given")


def _empty() -> dict[str, Any]:
    return {name: 0 for name in (*COUNTS, "blocked", *BLOCKED, "points_given")}


def by_advocate(session: Session, shop_id: int, advocate_member_id: int | None = None) -> list[dict[str, Any]]:
    """One row of figures per advocate who has a visit or a referral, in advocate order."""
    rows: dict[int, dict[str, Any]] = defaultdict(_empty)
    visits = (
        select(
            ReferralVisit.advocate_member_id,
            func.count(),
            func.sum(case((ReferralVisit.code_status == "issued", 1), else_=0)),
        )
        .where(ReferralVisit.shop_id == shop_id)
        .group_by(ReferralVisit.advocate_member_id)
    )
    referrals = (
        select(
            Referral.advocate_member_id,
            Referral.status,
            Referral.block_reason,
            func.count(),
            func.sum(case((Referral.points_held > 0, 1), else_=0)),
            func.sum(Referral.points_held),
        )
        .where(Referral.shop_id == shop_id)
        .group_by(Referral.advocate_member_id, Referral.status, Referral.block_reason)
    )
    if advocate_member_id is not None:
        visits = visits.where(ReferralVisit.advocate_member_id == advocate_member_id)
        referrals = referrals.where(Referral.advocate_member_id == advocate_member_id)
    for advocate, opened, issued in session.execute(visits):
        rows[advocate]["links_opened"] += opened
        rows[advocate]["friend_codes_issued"] += int(issued or 0)
    for advocate, status, reason, count, given, points in session.execute(referrals):
        row = rows[advocate]
        if reason != rules.NOT_FIRST_ORDER:
            row["first_orders"] += count
        if status == rules.BLOCKED:
            row["blocked"] += count
            row[f"blocked_{reason}"] += count
        elif status == rules.QUALIFIED:
            row["rewards_given"] += int(given or 0)
            row["rewards_pending"] += count - int(given or 0)
            row["points_given"] += int(points or 0)
        else:
            row[status] += count
    members = {
        m.id: m for m in session.scalars(select(Member).where(Member.shop_id == shop_id, Member.id.in_(list(rows))))
    }
    out = []
    for advocate in sorted(rows):
        member = members.get(advocate)
        out.append(
            {
                "advocate_member_id": advocate,
                "customer_id": member.customer_id if member else None,
                "email": member.email if member else None,
                **rows[advocate],
            }
        )
    return out


def for_shop(session: Session, shop_id: int) -> dict[str, Any]:
    """The shop's totals: the per-advocate rows added up."""
    total = _empty()
    advocates = by_advocate(session, shop_id)
    for row in advocates:
        for name in total:
            total[name] += row[name]
    return {"advocates": len(advocates), **total}


def to_csv(rows: list[dict[str, Any]], columns: tuple[str, ...] | None = None) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns or (rows[0].keys() if rows else COLUMNS)))
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _cell(value) for key, value in row.items()})
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    """A cell a spreadsheet would run as a formula (a shopper's e-mail may start with "=") is kept as text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def listed(
    session: Session, shop_id: int, status: str | None = None, advocate_member_id: int | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Referrals, newest order first, with the reason for each block in words."""
    query = select(Referral).where(Referral.shop_id == shop_id)
    if status is not None:
        query = query.where(Referral.status == status)
    if advocate_member_id is not None:
        query = query.where(Referral.advocate_member_id == advocate_member_id)
    found = session.scalars(query.order_by(Referral.ordered_at.desc(), Referral.order_id.desc()).limit(limit))
    return [describe(row) for row in found]


def describe(row: Referral) -> dict[str, Any]:
    return {
        "order_id": row.order_id,
        "advocate_member_id": row.advocate_member_id,
        "friend_member_id": row.friend_member_id,
        "matched_by": row.matched_by,
        "ordered_at": row.ordered_at.isoformat(),
        "status": row.status,
        "block_reason": row.block_reason,
        "block_explanation": rules.REASONS.get(row.block_reason or ""),
        "points_held": row.points_held,
        "points_owed": row.points_owed,
        "available_at": row.available_at.isoformat() if row.available_at else None,
        "approved_by": row.approved_by,
        "approved_reason": row.approved_reason,
        "approved_at": row.approved_at.isoformat() if row.approved_at else None,
    }
