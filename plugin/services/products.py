"""The per-shop product cache that earning rules match lines by, and the orders waiting for a product's facts."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import delete, distinct, func, select
from sqlalchemy.orm import Session

from plugin.db import insert_for
from plugin.models import OrderProductWait, Product, utcnow
from plugin.programme import rules
from plugin.programme.events import OrderSnapshot, ProductFacts

log = logging.getLogger(__name__)


def cached(session: Session, shop_id: int, product_ids: Iterable[int]) -> dict[int, rules.Product]:
    """The cached facts of these products (one query); absent ids are not cached yet."""
    ids = sorted({pid for pid in product_ids if pid is not None})
    if not ids:
        return {}
    rows = session.execute(
        select(Product.product_id, Product.product_type, Product.vendor, Product.tags, Product.collections).where(
            Product.shop_id == shop_id, Product.product_id.in_(ids)
        )
    )
    return {
        pid: rules.Product(
            pid, ptype, vendor, frozenset(tags or ()), None if collections is None else frozenset(collections)
        )
        for pid, ptype, vendor, tags, collections in rows
    }


def wanted(snapshot: OrderSnapshot) -> set[int]:
    """The products an order's lines name (a custom line names none)."""
    return {line.product_id for line in snapshot.lines if line.product_id is not None}


def unknown(rule_set: rules.RuleSet, wanted: set[int], cache: dict[int, rules.Product]) -> set[int]:
    """The wanted products whose facts the rules need and `cache` lacks: an order naming one waits for it."""
    collections = rule_set.needs_collections
    return {pid for pid in wanted if pid not in cache or (collections and cache[pid].collections is None)}


def upsert(session: Session, shop_id: int, product: ProductFacts, *, deleted: bool = False) -> None:
    """Store a product's facts for this shop; a webhook without collections keeps those already known."""
    values = {
        "product_type": product.product_type[:255],
        "vendor": product.vendor[:255],
        "tags": sorted(product.tags),
        "deleted": deleted,
        "updated_at": utcnow(),
    }
    if product.collections is not None:
        values["collections"] = sorted(product.collections)
    if product.skus is not None:
        values["skus"] = sorted(product.skus)
    insert = insert_for(session)(Product).values(shop_id=shop_id, product_id=product.product_id, **values)
    session.execute(insert.on_conflict_do_update(index_elements=["shop_id", "product_id"], set_=values))


def mark_deleted(session: Session, shop_id: int, product_id: int) -> None:
    """A deleted product keeps its last facts (old orders still name it); one never seen is known as empty."""
    session.execute(
        insert_for(session)(Product)
        .values(
            shop_id=shop_id,
            product_id=product_id,
            product_type="",
            vendor="",
            tags=[],
            collections=[],
            deleted=True,
            updated_at=utcnow(),
        )
        .on_conflict_do_update(index_elements=["shop_id", "product_id"], set_={"deleted": True, "updated_at": utcnow()})
    )


def wait(session: Session, shop_id: int, order_id: int, product_ids: Iterable[int]) -> None:
    for product_id in sorted(set(product_ids)):
        session.execute(
            insert_for(session)(OrderProductWait)
            .values(shop_id=shop_id, product_id=product_id, order_id=order_id, created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["shop_id", "product_id", "order_id"])
        )


def orders_waiting_for(session: Session, shop_id: int, product_id: int) -> list[int]:
    return list(
        session.scalars(
            select(OrderProductWait.order_id)
            .where(OrderProductWait.shop_id == shop_id, OrderProductWait.product_id == product_id)
            .order_by(OrderProductWait.order_id)
        )
    )


def stop_waiting(session: Session, shop_id: int, order_id: int) -> None:
    session.execute(
        delete(OrderProductWait).where(OrderProductWait.shop_id == shop_id, OrderProductWait.order_id == order_id)
    )


def known_collections(session: Session, shop_id: int) -> frozenset[str]:
    """Every collection id and handle the shop's cached products belong to."""
    names: set[str] = set()
    for (collections,) in session.execute(
        select(Product.collections).where(Product.shop_id == shop_id, Product.collections.is_not(None))
    ):
        names.update(collections or ())
    return frozenset(names)


def shops_waiting(session: Session, older_than: timedelta = timedelta(0)) -> dict[int, list[int]]:
    """Per shop, the products some order has waited for longer than `older_than`: to look up again."""
    cutoff = utcnow() - older_than
    rows = session.execute(
        select(OrderProductWait.shop_id, OrderProductWait.product_id)
        .distinct()
        .where(OrderProductWait.created_at <= cutoff)
        .order_by(OrderProductWait.shop_id)
    )
    waiting: dict[int, list[int]] = {}
    for shop_id, product_id in rows:
        waiting.setdefault(shop_id, []).append(product_id)
    return waiting


def waiting_count(session: Session, shop_id: int) -> int:
    return session.execute(
        select(func.count(distinct(OrderProductWait.order_id))).where(OrderProductWait.shop_id == shop_id)
    ).scalar_one()
