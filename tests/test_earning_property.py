"""Property: under random rule sets, orders, partial refunds and cancels, shuffled and repeated deliveries end
with the balances of the natural order, and with exactly what the order's lot says it should hold."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select

from plugin import ledger
from plugin.db import transaction
from plugin.models import Member, Order, Refund
from plugin.programme import events
from plugin.programme.earning import Lot, points_to_hold
from plugin.services import accrual, rule_sets, shops

PAID_AT = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
TYPES = ("Outerwear", "Shirts", "Shoes")
_ids = itertools.count(1)

multipliers = st.sampled_from(["0.5", "1.5", "2", "3"])
matches = st.one_of(
    st.fixed_dictionaries({"product_types": st.lists(st.sampled_from(TYPES), min_size=1, max_size=2)}),
    st.fixed_dictionaries({"vendors": st.just(["acme"])}),
)
rule = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("base_rate"), "points": st.integers(1, 5), "per_amount": st.sampled_from(["1", "0.5", "3"])},
        optional={"min_subtotal": st.sampled_from(["10", "100"]), "cap_per_order": st.integers(0, 300)},
    ),
    st.fixed_dictionaries({"type": st.just("multiplier"), "multiplier": multipliers, "match": matches}),
    st.fixed_dictionaries({"type": st.just("exclusion"), "match": matches}),
    st.fixed_dictionaries({"type": st.just("fixed_points"), "points": st.integers(1, 500)}),
    st.fixed_dictionaries({"type": st.just("points_cap"), "max_points": st.integers(0, 1000)}),
    st.fixed_dictionaries(
        {
            "type": st.just("campaign"),
            "name": st.just("Sale"),
            "starts_at": st.sampled_from(["2026-11-27T00:00:00", "2026-11-28T00:00:00"]),  # active, or not yet
            "ends_at": st.just("2026-11-29T00:00:00"),
        },
        optional={"match": matches},
    ).flatmap(
        lambda c: st.one_of(
            multipliers.map(lambda m: {**c, "multiplier": m}),
            st.integers(1, 300).map(lambda b: {**c, "bonus_points": b}),
        )
    ),
)
rule_sets_ = st.fixed_dictionaries(
    {"rules": st.lists(rule, max_size=6), "campaign_stack_cap": st.sampled_from(["1", "2", "4"])}
)
lines = st.lists(
    st.tuples(st.integers(0, 2), st.integers(1, 3), st.integers(1, 20000)), min_size=1, max_size=4
)  # (product index, quantity, unit price in cents)


@st.composite
def histories(draw):
    order_lines = draw(lines)
    refunds = draw(
        st.lists(
            st.lists(st.tuples(st.integers(0, len(order_lines) - 1), st.integers(1, 3)), min_size=1, max_size=3),
            max_size=3,
        )
    )
    cancelled = draw(st.booleans())
    return order_lines, refunds, cancelled


def _events(n: int, order_lines, refunds, cancelled) -> list[events.Event]:
    """The natural order of one order's deliveries: products, paid, refunds, cancellation."""
    base = n * 100
    products = [
        events.ProductUpdated(events.ProductFacts(base + i, TYPES[i], "Acme" if i == 0 else "Bolt")) for i in range(3)
    ]
    order_lines_ = tuple(
        events.OrderLine(base + i, qty, Decimal(cents) * qty / 100, product_id=base + p)
        for i, (p, qty, cents) in enumerate(order_lines)
    )
    snapshot = events.OrderSnapshot(
        order_id=n, name=f"#{n}", customer=events.Customer(n), email=None, currency="USD", test=False,
        taxes_included=False, lines=order_lines_,
    )  # fmt: skip
    history: list[events.Event] = [*products, events.OrderPaid(snapshot, PAID_AT)]
    for k, refunded in enumerate(refunds):
        quantities: dict[int, int] = {}
        for index, qty in refunded:
            quantities[base + index] = quantities.get(base + index, 0) + qty
        history.append(events.OrderRefunded(events.RefundFacts(n * 10 + k, n, quantities)))
    if cancelled:
        history.append(events.OrderCancelled(snapshot.__class__(**{**snapshot.__dict__, "cancelled_at": PAID_AT})))
    return history


def _apply_all(url: str, domain: str, history: list[events.Event]) -> None:
    for event in history:
        with transaction(url) as session:
            accrual.apply(session, shops.get(session, domain), event)


def _balance(url: str, shop_id: int, customer_id: int) -> int:
    with transaction(url) as session:
        return (
            session.execute(
                select(Member.balance).where(Member.shop_id == shop_id, Member.customer_id == customer_id)
            ).scalar_one_or_none()
            or 0
        )


def test_shuffled_repeated_deliveries_end_where_the_natural_order_does(settings):
    url = settings.database_url
    with transaction(url) as session:
        natural_shop = shops.install(session, "natural.myshopify.com", None, settings.encryption_keys).id
        shuffled_shop = shops.install(session, "shuffled.myshopify.com", None, settings.encryption_keys).id

    @hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(proposed=rule_sets_, history=histories(), data=st.data())
    def check(proposed, history, data):
        n = next(_ids)
        with transaction(url) as session:
            for domain in ("natural.myshopify.com", "shuffled.myshopify.com"):
                rule_sets.save(session, shops.get(session, domain), proposed, "property")
        natural = _events(n, *history)
        repeats = data.draw(st.lists(st.sampled_from(natural), max_size=4))
        shuffled = data.draw(st.permutations(natural + repeats))
        _apply_all(url, "natural.myshopify.com", natural)
        _apply_all(url, "shuffled.myshopify.com", shuffled)
        expected = _balance(url, natural_shop, n)
        assert _balance(url, shuffled_shop, n) == expected
        with transaction(url) as session:  # and it is what the lot's own contributions say it should hold
            order = session.execute(
                select(Order).where(Order.shop_id == shuffled_shop, Order.order_id == n)
            ).scalar_one()
            refunds = accrual.refund_facts(session, shuffled_shop, n)
            lot = Lot.from_json(order.lot)
            assert expected == points_to_hold(lot, refunds, cancelled=order.cancelled_at is not None)
            order_lines, refunded, cancelled = history
            if not refunded and not cancelled:
                assert expected == lot.points  # nothing taken back: the whole award
            refunded_units = {}
            for refund in refunded:
                for index, qty in refund:
                    refunded_units[index] = refunded_units.get(index, 0) + qty
            if cancelled or all(refunded_units.get(i, 0) >= qty for i, (_, qty, _) in enumerate(order_lines)):
                assert expected == 0  # everything refunded or cancelled: exactly everything taken back
            assert session.query(Refund).filter(Refund.shop_id == shuffled_shop, Refund.order_id == n).count() == len(
                history[1]
            )
            assert ledger.verify(session) == []

    check()
