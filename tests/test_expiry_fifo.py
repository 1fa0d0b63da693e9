"""Expiry's pure rules: lots consumed first-in first-out, when each expires, what is due, and the reminders."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from plugin.programme import expiry as rules
from plugin.programme.expiry import Move, Policy, add_months

UTC_ZONE = ZoneInfo("UTC")
JAN = datetime(2026, 1, 10, 12, tzinfo=UTC)


def earn(pid, points, when, *, order_id=None, available=None):
    return Move(pid, "earn", points, when, available_at=available or when, order_id=order_id)


def spend(pid, points, when, kind="redeem", order_id=None):
    return Move(pid, kind, -points, when, order_id=order_id)


def remaining(moves):
    held, debt = rules.lots(moves)
    return {lot.posting_id: lot.remaining for lot in held}, debt


def test_spending_takes_the_oldest_lots_first():
    moves = [earn(1, 100, JAN), earn(2, 50, JAN + timedelta(days=30)), spend(3, 120, JAN + timedelta(days=40))]
    assert remaining(moves) == ({1: 0, 2: 30}, 0)


def test_oldest_means_oldest_available_not_oldest_posted():
    # Lot 1 was posted first but is still pending until March; lot 2 was available at once.
    moves = [
        earn(1, 100, JAN, available=JAN + timedelta(days=60)),
        earn(2, 40, JAN + timedelta(days=1)),
        spend(3, 30, JAN + timedelta(days=2)),
    ]
    assert remaining(moves) == ({1: 100, 2: 10}, 0)


def test_a_reversal_takes_from_its_own_order_first():
    moves = [earn(1, 100, JAN, order_id=11), earn(2, 80, JAN + timedelta(days=1), order_id=22)]
    moves.append(spend(3, 50, JAN + timedelta(days=2), kind="reverse", order_id=22))
    assert remaining(moves) == ({1: 100, 2: 30}, 0)


def test_spending_beyond_every_lot_is_a_debt_the_next_lot_pays_first():
    moves = [earn(1, 10, JAN), spend(2, 25, JAN + timedelta(days=1), kind="reverse"), earn(3, 40, JAN + timedelta(2))]
    assert remaining(moves) == ({1: 0, 3: 25}, 0)
    assert remaining(moves[:2]) == ({1: 0}, 15)


def test_an_expire_posting_takes_exactly_its_lot():
    moves = [earn(1, 100, JAN), earn(2, 50, JAN), Move(3, "expire", -50, JAN + timedelta(days=200), expires_lot=2)]
    assert remaining(moves) == ({1: 100, 2: 0}, 0)


def test_months_are_added_on_the_calendar():
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2027, 8, 31), 6) == date(2028, 2, 29)
    assert add_months(date(2026, 11, 15), 14) == date(2028, 1, 15)


def test_per_lot_each_lot_expires_n_months_after_it_became_available():
    policy = Policy(rules.PER_LOT, 6)
    moves = [earn(1, 100, JAN, available=JAN + timedelta(days=14)), earn(2, 20, JAN + timedelta(days=40))]
    coming = rules.upcoming(moves, policy, UTC_ZONE, date(2026, 2, 1), JAN + timedelta(days=22))
    assert coming == [(date(2026, 7, 24), 100), (date(2026, 8, 19), 20)]
    due = rules.due(moves, policy, UTC_ZONE, date(2026, 7, 24), datetime(2026, 7, 24, tzinfo=UTC))
    assert [(e.lot.posting_id, e.points) for e in due] == [(1, 100)]


def test_a_shops_time_zone_decides_the_day():
    # Available at 23:30 UTC on 31 Jan: already 1 Feb in Tokyo, so it expires on 1 Aug there, 31 Jul in UTC.
    late = datetime(2026, 1, 31, 23, 30, tzinfo=UTC)
    policy = Policy(rules.PER_LOT, 6)
    assert rules.upcoming([earn(1, 5, late)], policy, ZoneInfo("Asia/Tokyo"), date(2026, 2, 2), late) == [
        (date(2026, 8, 1), 5)
    ]
    assert rules.upcoming([earn(1, 5, late)], policy, UTC_ZONE, date(2026, 2, 2), late) == [(date(2026, 7, 31), 5)]


def test_inactivity_expires_the_available_balance_n_months_after_the_last_earning_or_redemption():
    policy = Policy(rules.INACTIVITY, 3)
    moves = [earn(1, 100, JAN), spend(2, 30, JAN + timedelta(days=20)), earn(3, 10, JAN + timedelta(days=25))]
    # Last activity 4 Feb (the earning): everything goes on 4 May.
    assert rules.upcoming(moves, policy, UTC_ZONE, date(2026, 3, 1), JAN + timedelta(days=50)) == [
        (date(2026, 5, 4), 80)
    ]
    # A refund is not activity: the date stays 4 May.
    moves.append(Move(4, "reverse", -5, JAN + timedelta(days=80), order_id=None))
    assert rules.upcoming(moves, policy, UTC_ZONE, date(2026, 4, 1), JAN + timedelta(days=81)) == [
        (date(2026, 5, 4), 75)
    ]
    # A new earning (31 Mar) is: everything, including its still-pending points, now goes on 30 Jun.
    moves.append(earn(5, 40, JAN + timedelta(days=80), available=datetime(2026, 6, 1, tzinfo=UTC)))
    assert rules.upcoming(moves, policy, UTC_ZONE, date(2026, 4, 1), JAN + timedelta(days=81)) == [
        (date(2026, 6, 30), 115)
    ]


def test_pending_points_never_expire_before_they_are_available():
    policy = Policy(rules.INACTIVITY, 1)
    pending_until = datetime(2026, 6, 1, tzinfo=UTC)
    moves = [earn(1, 100, JAN), Move(2, "earn", 50, JAN, available_at=pending_until)]
    due = rules.due(moves, policy, UTC_ZONE, date(2026, 3, 1), datetime(2026, 3, 1, tzinfo=UTC))
    assert [(e.lot.posting_id, e.points) for e in due] == [(1, 100)]


def test_reminders_fire_on_their_day_or_late_but_only_the_nearest():
    policy = Policy(rules.PER_LOT, 6, (30, 7))
    moves = [earn(1, 120, datetime(2025, 7, 31, 9, tzinfo=UTC))]  # expires 31 Jan 2026
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert rules.reminders(moves, policy, UTC_ZONE, date(2026, 1, 1), now) == [(date(2026, 1, 31), 120, 30)]
    assert rules.reminders(moves, policy, UTC_ZONE, date(2025, 12, 31), now) == []
    assert rules.reminders(moves, policy, UTC_ZONE, date(2026, 1, 26), now) == [(date(2026, 1, 31), 120, 7)]


amounts = st.integers(min_value=1, max_value=500)


@given(st.lists(st.tuples(st.booleans(), amounts, st.integers(0, 400)), min_size=1, max_size=40))
def test_what_the_lots_hold_minus_the_debt_is_always_the_balance(steps):
    moves = []
    for index, (is_earning, points, day) in enumerate(steps, start=1):
        when = JAN + timedelta(days=day)
        moves.append(earn(index, points, when) if is_earning else spend(index, points, when))
    held, debt = rules.lots(moves)
    assert sum(lot.remaining for lot in held) - debt == sum(m.points for m in moves)
    assert all(0 <= lot.remaining <= lot.points for lot in held) and debt >= 0
