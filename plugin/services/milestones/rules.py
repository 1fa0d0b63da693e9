"""The milestone member rule: thresholds, punch cards and the signup bonus recomputed from the member's orders.

Registered in services/member_rules.py, so it runs in the transaction of every order change; it reads every
order fact of the member and brings each rule's grants to what those facts say, so arrival order never matters.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from plugin.models import Member, MilestoneHolding, Order, Refund, Shop
from plugin.programme import milestones
from plugin.programme.earning import Lot
from plugin.programme.events import RefundFacts
from plugin.services import lot_reads, shops
from plugin.services.milestones import grants
from plugin.services.milestones import settings as programme

if TYPE_CHECKING:
    from plugin.services.member_facts import MemberFacts


def order_history(session, shop: Shop, member_id: int) -> list[milestones.OrderSpend]:
    """Every paid order of the member, with the money it still counts and its year in the shop's time zone."""
    return order_histories(session, shop, [member_id]).get(member_id, [])


def order_histories(session, shop: Shop, member_ids: list[int]) -> dict[int, list[milestones.OrderSpend]]:
    """order_history for many members in two queries (the set-based drain's), by member id (absent: no order)."""
    zone = shops.zone(shop)
    orders = session.execute(
        select(Order.order_id, Order.paid_at, Order.lot, Order.cancelled_at, Order.member_id).where(
            Order.shop_id == shop.id, Order.member_id.in_(member_ids), Order.paid_at.is_not(None)
        )
    ).all()
    if not orders:
        return {}
    refunds: dict[int, list[RefundFacts]] = {}
    rows = session.execute(
        select(Refund.order_id, Refund.refund_id, Refund.facts).where(
            Refund.shop_id == shop.id, Refund.order_id.in_([o.order_id for o in orders])
        )
    )
    for order_id, refund_id, facts in rows:
        quantities = {int(line): int(qty) for line, qty in facts["line_quantities"].items()}
        refunds.setdefault(order_id, []).append(RefundFacts(refund_id, order_id, quantities))
    return histories_from(orders, refunds, zone, {o.order_id: o.lot for o in orders})


def histories_from(
    orders, refunds: dict[int, list[RefundFacts]], zone, lots: dict[int, dict[str, Any] | None]
) -> dict[int, list[milestones.OrderSpend]]:
    """order_histories' answer from rows with order_id, paid_at, cancelled_at and member_id, their lots by order id
    (lot_reads.lots) and refunds by order id (member_facts reads the rows once for tiers and milestones)."""
    histories: dict[int, list[milestones.OrderSpend]] = {}
    for o in orders:
        histories.setdefault(o.member_id, []).append(
            milestones.OrderSpend(
                order_id=o.order_id,
                year=milestones.local_year(o.paid_at, zone),
                spend=lot_spend(lots[o.order_id], refunds.get(o.order_id, ()), o.cancelled_at is not None),
            )
        )
    return histories


def lot_spend(lot_json: dict[str, Any] | lot_reads.LotSums | None, refunds, cancelled: bool) -> Fraction:
    """milestones.order_spend of a stored lot. An order with no refund is read straight from the lot's JSON (its
    eligible lines, whole) or its sums (lot_reads): what nearly every order is, without building the lot."""
    if lot_json is None or cancelled:
        return Fraction(0)
    if type(lot_json) is lot_reads.LotSums:  # summed by PostgreSQL (never given with refunds)
        # Fraction(Decimal) checks the Decimal against numbers.Rational first: its ratio (in lowest terms) is faster.
        return Fraction(0) if lot_json.reasoned else Fraction(*lot_json.eligible.as_integer_ratio())
    if lot_json.get("reason") is not None:
        return Fraction(0)
    if not refunds:
        # Summed as Decimals (exact) and made a Fraction once: Fraction's own parsing of each string costs more.
        return Fraction(sum((Decimal(line["eligible"]) for line in lot_json["lines"]), Decimal(0)))
    return milestones.order_spend(Lot.from_json(lot_json), refunds, cancelled)


def holdings(session, shop: Shop, member_ids: list[int]) -> dict[int, dict[str, int]]:
    """Per member: the grants held per rule key (one query for many members)."""
    held: dict[int, dict[str, int]] = {}
    for member_id, rule_key, held_grants in session.execute(
        select(MilestoneHolding.member_id, MilestoneHolding.rule_key, MilestoneHolding.grants).where(
            MilestoneHolding.shop_id == shop.id, MilestoneHolding.member_id.in_(member_ids)
        )
    ):
        held.setdefault(member_id, {})[rule_key] = len(held_grants)
    return held


def recompute(session, shop: Shop, member_id: int, facts: MemberFacts | None = None) -> None:
    """Bring the member's threshold, punch-card and signup grants to what their order facts say now.

    `facts`: what the set-based drain read for all its batch's members at once (services/member_facts.py), under
    their locks, which its transaction still holds: so no lock is taken here then. Else the member is locked
    and their facts read here."""
    current = programme.current(session, shop.id)
    if not programme.any_rules(current):
        return  # no milestone programme: not one extra query on the order path
    session.flush()  # accrual changes the order under no_autoflush: the facts read here must include them
    if facts is not None:
        history, held = facts.milestones_known(member_id)
    else:
        # The member's lock first, then the facts: two of the member's orders changing at once are counted one
        # after the other, the second seeing the first's order (each statement reads what was committed before).
        session.execute(select(Member.id).where(Member.shop_id == shop.id, Member.id == member_id).with_for_update())
        history = order_history(session, shop, member_id)
        held = holdings(session, shop, [member_id]).get(member_id, {})
    for source, count, points_each, reward_id in targets(current, history):
        if held.get(source.rule_key, 0) != count:  # unchanged (the usual case): no write at all
            grants.bring_to(session, shop, member_id, source, count, points_each, reward_id)
    if not held.get("signup:signup"):
        signup(session, shop, member_id, current)


def targets(
    current: dict[str, Any], history: list[milestones.OrderSpend]
) -> list[tuple[grants.Source, int, int, str | None]]:
    """Each threshold's and punch card's grants as the history earns them: (source, count, points each, reward)."""
    version = programme.rule_version(current["version"])
    found = []
    for threshold in current["thresholds"]:
        source = grants.Source("threshold", threshold["id"], version, _threshold_label(threshold))
        count = milestones.threshold_crossings(threshold, history)
        found.append((source, count, threshold["points"], threshold.get("reward")))
    for card in current["punch_cards"]:
        source = grants.Source("punch_card", card["id"], version, card["title"] or f"Every {card['every']} orders")
        count = milestones.punch_card_grants(card, history)
        found.append((source, count, card["points"], card.get("reward")))
    return found


def signup_source(current: dict[str, Any]) -> grants.Source:
    """The signup bonus as its grant names it."""
    return grants.Source("signup", "signup", programme.rule_version(current["version"]), "Signup bonus")


def signup_due(current: dict[str, Any], enrolled_at: datetime) -> bool:
    """Whether the signup bonus is on and the member enrolled since it was turned on."""
    bonus = current["signup"]
    return bonus["points"] > 0 and bool(bonus.get("since")) and enrolled_at >= datetime.fromisoformat(bonus["since"])


def signup(session, shop: Shop, member_id: int, current: dict[str, Any] | None = None) -> int:
    """The signup bonus, once per member ever, for members enrolled since it was turned on; never taken back."""
    current = current or programme.current(session, shop.id)
    bonus = current["signup"]
    if bonus["points"] <= 0 or not bonus.get("since"):
        return 0
    enrolled_at = session.execute(
        select(Member.enrolled_at).where(Member.shop_id == shop.id, Member.id == member_id)
    ).scalar_one()
    if not signup_due(current, enrolled_at):
        return 0
    holding = grants.lock(session, shop.id, member_id, "signup:signup")
    if holding.grants:
        return 0  # once ever: a later change of the bonus gives nothing more and takes nothing back
    return grants.bring_to(session, shop, member_id, signup_source(current), 1, bonus["points"])


def _threshold_label(threshold: dict[str, Any]) -> str:
    period = "lifetime" if threshold["period"] == "lifetime" else "calendar year"
    return threshold["title"] or f"Spend {threshold['amount']} ({period})"
