"""Tiers end to end through signed webhooks: upgrade, downgrade on refund, retention across a period end, the
paid tier bought, refunded and renewed, and a tag push that fails and then succeeds."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select

from plugin import create_app, platforms
from plugin.db import transaction
from plugin.jobs import tasks
from plugin.models import Member, Posting, TierMove
from plugin.services import outbox, shops, tier_push, tier_sets, tier_sweep
from tests import builders
from tests.conftest import SHOP, signed_headers

ALICE = 7001
PROGRAMME = {
    "metric": "spend",
    "period": "calendar_year",
    "tiers": [
        {"id": "silver", "name": "Silver", "threshold": "100"},
        {"id": "gold", "name": "Gold", "threshold": "300", "multiplier": "2", "entry_reward": 50,
         "perks": ["early access"]},
    ],
}  # fmt: skip


def save(settings, data=PROGRAMME) -> None:
    with transaction(settings.database_url) as session:
        tier_sets.save(session, shops.get(session, SHOP), data, "test")


def deliver_at(client, topic: str, payload: dict, when: str = "2026-11-20T10:00:00Z"):
    """A signed delivery whose X-Shopify-Triggered-At (the paid date) is `when`."""
    body = json.dumps(payload).encode()
    headers = {**signed_headers(body, topic), "X-Shopify-Triggered-At": when}
    answer = client.post("/webhooks/shopify", data=body, headers=headers)
    assert answer.status_code == 200
    return answer


def member(settings, customer_id: int = ALICE) -> Member:
    with transaction(settings.database_url) as session:
        row = session.execute(select(Member).where(Member.customer_id == customer_id)).scalar_one()
        session.expunge(row)
        return row


def moves(settings) -> list[tuple[str | None, str | None, str]]:
    with transaction(settings.database_url) as session:
        rows = session.scalars(select(TierMove).order_by(TierMove.member_id, TierMove.seq))
        return [(m.from_tier, m.to_tier, m.reason) for m in rows]


def tier_postings(settings) -> list[tuple[str, int, str]]:
    with transaction(settings.database_url) as session:
        rows = session.scalars(select(Posting).where(Posting.source_type == "tier").order_by(Posting.id))
        return [(p.kind, p.points, p.source_id) for p in rows]


def test_orders_move_a_member_up_the_tiers_with_event_entry_reward_and_multiplier(client, settings, shop):
    save(settings)
    deliver_at(client, "orders/paid", builders.order(1, ALICE, [builders.line(11, "200.00")]))
    assert member(settings).tier == "silver"
    deliver_at(client, "orders/paid", builders.order(2, ALICE, [builders.line(21, "150.00")]))
    gold = member(settings)
    assert (gold.tier, gold.tier_until) == ("gold", datetime(2028, 1, 1, tzinfo=UTC))
    assert moves(settings) == [
        (None, "silver", "spend 200.00 in 2026 (order #1)"),
        ("silver", "gold", "spend 350.00 in 2026 (order #2)"),
    ]
    assert tier_postings(settings) == [("bonus", 50, "entry:gold:2026")]
    with transaction(settings.database_url) as session:
        events = [e for e in outbox.recorded(session, shop) if e.event_type == "tier.changed"]
        assert [(e.payload["to_tier"], e.payload["direction"], e.payload["perks"]) for e in events] == [
            ("silver", "up", []),
            ("gold", "up", ["early access"]),
        ]
    # A Gold member's next order earns twice its base points; the tier's share is its own contribution.
    deliver_at(client, "orders/paid", builders.order(3, ALICE, [builders.line(31, "100.00")]))
    assert member(settings).balance == 200 + 150 + 50 + 200
    deliver_at(client, "orders/paid", builders.order(3, ALICE, [builders.line(31, "100.00")]))  # repeated
    assert member(settings).balance == 600 and len(moves(settings)) == 2


def test_a_refund_moves_the_member_down_and_takes_the_entry_reward_back(client, settings, shop):
    save(settings)
    deliver_at(client, "orders/paid", builders.order(1, ALICE, [builders.line(11, "200.00")]))
    deliver_at(client, "orders/paid", builders.order(2, ALICE, [builders.line(21, "150.00")]))
    assert member(settings).tier == "gold"
    deliver_at(client, "refunds/create", builders.refund(901, 2, {21: 1}))
    after = member(settings)
    assert after.tier == "silver"
    assert moves(settings)[-1] == ("gold", "silver", "spend 200.00 in 2026 (order #1)")
    assert tier_postings(settings) == [("bonus", 50, "entry:gold:2026"), ("reverse", -50, "entry:gold:2026")]
    assert after.balance == 200  # order #2's points and the entry reward, both taken back exactly


def test_a_tier_is_kept_across_the_period_boundary_and_lost_when_its_retention_ends(client, settings, shop):
    save(settings)
    deliver_at(client, "orders/paid", builders.order(1, ALICE, [builders.line(11, "400.00")]), "2025-06-01T10:00:00Z")
    kept = member(settings)
    assert (kept.tier, kept.tier_until) == ("gold", datetime(2027, 1, 1, tzinfo=UTC))
    # The period 2025 ended long ago; the clock says 2026: the tier is kept to the end of 2026.
    assert tier_sweep.run(settings.database_url, datetime(2026, 12, 31, 23, 0, tzinfo=UTC)) == 0
    assert member(settings).tier == "gold"
    # Frozen at the first moment of 2027: retention has run out.
    assert tier_sweep.run(settings.database_url, datetime(2027, 1, 1, 0, 0, 1, tzinfo=UTC)) == 1
    assert member(settings).tier is None
    assert moves(settings)[-1][:2] == ("gold", None)
    assert moves(settings)[-1][2].startswith("period ended: ")
    assert tier_sweep.run(settings.database_url, datetime(2027, 1, 2, tzinfo=UTC)) == 0  # nothing left due


PAID = {**PROGRAMME, "paid": {"tier": "gold", "skus": ["VIP-YEAR"], "months": 12, "mode": "stack"}}


def vip_line(line_id: int) -> dict:
    return {**builders.line(line_id, "50.00"), "product_id": 900, "variant_id": 9000, "sku": "VIP-YEAR"}


def test_the_paid_tier_is_bought_refunded_and_renewed(client, settings, shop):
    vip = {"id": 900, "title": "VIP", "tags": "", "variants": [{"id": 9000, "sku": "VIP-YEAR"}]}
    deliver_at(client, "products/create", vip)
    save(settings, PAID)
    deliver_at(client, "orders/paid", builders.order(1, ALICE, [vip_line(11)]), "2026-11-01T10:00:00Z")
    bought = member(settings)
    assert (bought.tier, bought.tier_paid_until) == ("gold", datetime(2027, 11, 1, 10, tzinfo=UTC))
    assert moves(settings)[-1] == (None, "gold", "paid membership until 2027-11-01")
    deliver_at(client, "orders/paid", builders.order(2, ALICE, [vip_line(21)]), "2026-11-15T10:00:00Z")
    assert member(settings).tier_paid_until == datetime(2028, 11, 1, 10, tzinfo=UTC)  # extended from the end date
    deliver_at(client, "refunds/create", builders.refund(901, 1, {11: 1}))
    assert member(settings).tier_paid_until == datetime(2027, 11, 15, 10, tzinfo=UTC)  # only the renewal is left
    deliver_at(client, "orders/cancelled", {**builders.order(2, ALICE, [vip_line(21)]),
                                            "cancelled_at": "2026-11-20T10:00:00Z"})  # fmt: skip
    ended = member(settings)
    assert (ended.tier, ended.tier_paid_until) == (None, None)


def test_a_paid_marker_that_matches_no_product_is_refused(settings, shop):
    from plugin.services.errors import Invalid

    with transaction(settings.database_url) as session:
        try:
            tier_sets.save(session, shops.get(session, SHOP), PAID, "test")
        except Invalid as error:
            assert error.fields == {"paid": {"skus": ["no product of the shop has the SKU 'VIP-YEAR'"]}}
        else:
            raise AssertionError("saved a paid membership that no product carries")


def test_a_tag_push_that_fails_is_retried_and_then_succeeds(fake_shop_api, shop_with_token, monkeypatch):
    settings, state = fake_shop_api
    save(settings)
    client = create_app(settings, TESTING=True).test_client()
    # Inline, the drain would push at once with the client's real back-off; this test drives the pushes itself.
    monkeypatch.setattr(tasks, "signal_tiers", lambda _settings: None)
    deliver_at(client, "orders/paid", builders.order(1, ALICE, [builders.line(11, "350.00")]))
    state.tier_errors_next = 100  # the shop fails every tier call: the client gives up, the member stays due

    def quick(settings_, shop_):
        admin = platforms.admin_client(settings_, shop_)
        admin.sleep = lambda _seconds: None
        return admin

    resting: set[int] = set()
    assert tier_push.push_tiers(settings, quick, resting.__contains__, resting.add) == 0
    assert resting == {shop_with_token} and tier_push.any_due(settings.database_url)
    assert state.customer_tags == {}
    state.tier_errors_next = 0
    assert tier_push.push_tiers(settings, quick) == 1
    owner = f"gid://shopify/Customer/{ALICE}"
    assert state.customer_tags[owner] == ["loyalty-tier-gold"]
    assert state.metafields[f"{owner} loyalty.tier"] == "Gold"
    assert not tier_push.any_due(settings.database_url)
    # Down to no tier: the tag goes and the metafield is deleted.
    deliver_at(client, "orders/cancelled", {**builders.order(1, ALICE, [builders.line(11, "350.00")]),
                                            "cancelled_at": "2026-11-21T10:00:00Z"})  # fmt: skip
    assert tier_push.push_tiers(settings, quick) == 1
    assert state.customer_tags[owner] == [] and f"{owner} loyalty.tier" not in state.metafields


def test_the_birthday_reward_of_the_members_tier_is_there_for_the_birthday_job(client, settings, shop):
    from plugin.services import tiers

    save(settings, {**PROGRAMME, "tiers": [PROGRAMME["tiers"][0], {**PROGRAMME["tiers"][1], "birthday_reward": 250}]})
    deliver_at(client, "orders/paid", builders.order(1, ALICE, [builders.line(11, "200.00")]))
    alice = member(settings).id  # read before the transaction below: SQLite has one writer at a time
    with transaction(settings.database_url) as session:
        assert tiers.birthday_points(session, shops.get(session, SHOP), alice) == 0  # Silver has none
    deliver_at(client, "orders/paid", builders.order(2, ALICE, [builders.line(21, "150.00")]))
    with transaction(settings.database_url) as session:
        assert tiers.birthday_points(session, shops.get(session, SHOP), alice) == 250


def test_a_spent_entry_reward_is_forgiven_under_stop_at_zero_so_the_balance_never_dips(client, settings, shop):
    from plugin import ledger

    with transaction(settings.database_url) as session:
        shops.update_settings(session, shops.get(session, SHOP), {"spent_points_policy": "stop_at_zero"})
    save(settings)
    deliver_at(client, "orders/paid", builders.order(1, ALICE, [builders.line(11, "200.00")]))
    deliver_at(client, "orders/paid", builders.order(2, ALICE, [builders.line(21, "150.00")]))
    spent = member(settings)
    assert spent.balance == 400  # 350 earned, 50 entry reward
    with transaction(settings.database_url) as session:  # the member spends everything
        ledger.post(session, shop, ledger.Entry(spent.id, "redeem", -400, "support", "spend", "spend", "manual"))
    deliver_at(client, "refunds/create", builders.refund(901, 2, {21: 1}))
    after = member(settings)
    assert (after.tier, after.balance) == ("silver", 0)
    assert tier_postings(settings)[1:] == [("forgive", 50, "entry:gold:2026"), ("reverse", -50, "entry:gold:2026")]
