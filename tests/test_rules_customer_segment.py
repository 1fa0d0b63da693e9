"""Customer segments: a Shopify customer tag earns at its own base rate; the best of a member's segments wins."""

from __future__ import annotations

from tests.rules_helpers import held, line, lot, refund, snapshot

BASE = {"type": "base_rate", "points": 2, "per_amount": "100"}
CARD = {"type": "customer_segment", "tag": "card-member", "points": 5, "per_amount": "100"}
VIP = {"type": "customer_segment", "tag": "vip", "points": 8, "per_amount": "100"}


def test_a_tagged_member_earns_the_segment_rate_instead_of_the_base_rate():
    order = snapshot(line(1, "1000.00"))
    assert lot(order, BASE, CARD).points == 20
    tagged = lot(order, BASE, CARD, tags=frozenset({"card-member"}))
    assert tagged.points == 50
    assert "card-member rate" in tagged.explanation


def test_the_highest_rate_among_a_members_segments_applies_whatever_their_order():
    order = snapshot(line(1, "1000.00"))
    both = frozenset({"card-member", "vip"})
    assert lot(order, BASE, CARD, VIP, tags=both).points == 80
    assert lot(order, BASE, VIP, CARD, tags=both).points == 80


def test_the_segment_rate_is_kept_on_the_lot_for_refunds():
    built = lot(snapshot(line(1, "500.00", 5)), BASE, CARD, tags=frozenset({"card-member"}))
    assert held(built, refund(1, {1: 2})) == 15
