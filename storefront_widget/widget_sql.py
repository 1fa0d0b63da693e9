"""The widget's whole read in one PostgreSQL statement: shop, membership, pending points, history, redemptions.

Every per-shop table in it is filtered on `shop_id = :shop_id`, a value the statement carries, so a database
sharded by shop sends it to the one node holding the shop (decision 0026). The caller knows the id from a
per-process map of domains to ids (`shop_ids`); the statement checks the pair, so a stale entry finds nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

# Timestamps leave PostgreSQL as UTC text with microseconds and are re-rendered by Python's isoformat(), so both
# read paths print them alike. A redemption's title is a per-line lookup by primary key (at most ten); source_id
# is cast only for redemption postings whose id is all digits (CASE is evaluated in order).
_WIDGET = text(
    """
    WITH s AS (SELECT id, currency, settings, settings_version, active, tiers, tiers_version, time_zone, locale
               FROM shops WHERE domain = :domain AND id = :shop_id),
    m AS (SELECT members.id, members.balance FROM members
          WHERE members.shop_id = :shop_id AND members.customer_id = :customer_id)
    SELECT s.id AS shop_id, s.currency, s.settings, s.settings_version, s.active, m.id AS member_id, m.balance,
      s.tiers, s.tiers_version, s.time_zone, s.locale,
      (SELECT coalesce(json_agg(json_build_object(
                  'points', o.points_held, 'at', to_char(o.available_at AT TIME ZONE 'UTC', :iso))
              ORDER BY o.available_at), '[]'::json)
         FROM orders o
        WHERE o.shop_id = :shop_id AND o.member_id = m.id AND o.available_at > now() AND o.points_held > 0
      ) AS pending,
      (SELECT coalesce(json_agg(json_build_object(
                  'at', to_char(h.created_at AT TIME ZONE 'UTC', :iso), 'kind', h.kind, 'points', h.points,
                  'order_id', h.order_id, 'order_name', h.order_name, 'source_type', h.source_type,
                  'title', h.title, 'note', h.note, 'details', h.details)
              ORDER BY h.id DESC), '[]'::json)
         FROM (SELECT p.id, p.created_at, p.kind, p.points, p.order_id, p.source_type, p.note, p.details,
                      o.name AS order_name,
                      (SELECT r.reward ->> 'title' FROM redemptions r
                        WHERE r.shop_id = :shop_id AND r.id = CASE
                            WHEN p.source_type = 'redemption' AND p.source_id ~ '^[0-9]{1,18}$'
                            THEN p.source_id::bigint END) AS title
                 FROM postings p
                 LEFT JOIN orders o ON o.shop_id = :shop_id AND o.order_id = p.order_id
                WHERE p.shop_id = :shop_id AND p.member_id = m.id
                ORDER BY p.id DESC LIMIT :history) AS h
      ) AS history,
      (SELECT coalesce(json_agg(json_build_object(
                  'id', x.id, 'status', x.status, 'code', x.code, 'title', x.reward ->> 'title',
                  'points', x.points, 'ends_at', to_char(x.ends_at AT TIME ZONE 'UTC', :iso), 'reason', x.reason,
                  'credit_milli', x.credit_milli, 'credit_currency', x.credit_currency,
                  'credit_balance_milli', x.credit_balance_milli)
              ORDER BY x.id DESC), '[]'::json)
         FROM (SELECT * FROM redemptions r WHERE r.shop_id = :shop_id AND r.member_id = m.id
                ORDER BY r.id DESC LIMIT :redemptions) AS x
      ) AS redemptions
    FROM s LEFT JOIN m ON true
    """
)
_ISO = 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'


_SHOP_ID = text("SELECT id FROM shops WHERE domain = :domain")
MAX_REMEMBERED_SHOPS = 10_000  # a web process serving more shops than this starts its map afresh

# domain -> shop id, per process. A domain keeps its id while its shop row lives; a shop erased and installed
# again has a new id, and the statement, which checks the pair, then finds nothing and the id is looked up again.
shop_ids: dict[str, int] = {}


def read(session: Session, domain: str, customer_id: int | None, history: int, redemptions: int) -> Any:
    """The widget's data as one row (None for an unknown shop); its JSON columns are plain lists of dicts."""
    known = shop_ids.get(domain)
    if known is not None:
        row = _read(session, known, domain, customer_id, history, redemptions)
        if row is not None:
            return row
        shop_ids.pop(domain, None)
    shop_id = session.execute(_SHOP_ID, {"domain": domain}).scalar()
    if shop_id is None:
        return None
    if len(shop_ids) >= MAX_REMEMBERED_SHOPS:
        shop_ids.clear()
    shop_ids[domain] = shop_id
    return _read(session, shop_id, domain, customer_id, history, redemptions)


def _read(session: Session, shop_id: int, domain: str, customer_id: int | None, history: int, redemptions: int):
    return session.execute(
        _WIDGET,
        {
            "shop_id": shop_id,
            "domain": domain,
            "customer_id": customer_id,  # None (a visitor) matches no member: `= NULL` is never true
            "iso": _ISO,
            "history": history,
            "redemptions": redemptions,
        },
    ).one_or_none()


def iso(value: str | None) -> str | None:
    """PostgreSQL's UTC text as Python's isoformat() prints the same instant."""
    return datetime.fromisoformat(value).isoformat() if value else None
