"""Property: the member rules' planning arithmetic (decision 0072) gives exactly what the plain versions gave.

Each faster function is compared with the plain one it replaces, written out here (or, for the qualifications, the
generic `_qualify` that a rolling period still takes): tier qualifications across time zones and local New Years,
ties of payment time, orders that no longer count; the tier held at each payment with grace days; milestone spend
thresholds and punch cards over spends in odd fractions (partial refunds), per calendar year, at exact multiples.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from plugin.programme import milestones
from plugin.programme import tiers as tier_rules

# UTC, a zone behind it with DST, a southern one on summer time at New Year, one whose DST shift is half an hour.
ZONES = [ZoneInfo(name) for name in ("UTC", "America/New_York", "Pacific/Auckland", "Australia/Lord_Howe")]
NEW_YEARS = [datetime(year, 1, 1, tzinfo=zone).astimezone(UTC) for year in (2024, 2025, 2026) for zone in ZONES]

moments = st.one_of(
    st.builds(lambda base, seconds: base + timedelta(seconds=seconds), st.sampled_from(NEW_YEARS),
              st.integers(-3 * 3600, 3 * 3600)),  # at and around a local New Year in some zone
    st.datetimes(datetime(2023, 6, 1), datetime(2027, 6, 1), timezones=st.just(UTC)),
)  # fmt: skip
facts_ = st.lists(
    st.builds(
        lambda order_id, at, cents, points, counts: tier_rules.OrderFact(
            order_id, f"#{order_id}", at, Decimal(cents) / 100, points, counts
        ),
        st.integers(1, 12),  # few ids: ties of (paid at, order id) order on the id
        moments,
        st.integers(0, 150_000),
        st.integers(0, 2_000),
        st.booleans(),
    ),
    max_size=12,
    unique_by=lambda f: f.order_id,
)


def _programme(metric: str, period: str, thresholds: list[int], grace_days: int) -> tier_rules.TierProgramme:
    tiers = tuple(
        tier_rules.Tier(f"t{n}", f"T{n}", Decimal(value) if metric == "orders" else Decimal(value) * 10)
        for n, value in enumerate(sorted(thresholds))
    )
    return tier_rules.TierProgramme(1, metric, period, tiers, grace_days)


programmes = st.builds(
    _programme,
    st.sampled_from(tier_rules.METRICS),
    st.sampled_from(tier_rules.PERIODS),
    st.lists(st.integers(1, 12), min_size=1, max_size=3, unique=True),
    st.sampled_from([0, 1, 30, 400]),
)


def _generic_qualifications(programme, facts, zone):
    return [
        tier_rules.Qualification(rank, running, fact.order_id, fact.name, fact.paid_at, key, kept)
        for rank, running, fact, key, kept in tier_rules._qualify(programme, facts, zone)
    ]


@settings(max_examples=400, deadline=None)
@given(programme=programmes, facts=facts_, zone=st.sampled_from(ZONES))
def test_qualifications_are_the_generic_ones(programme, facts, zone):
    assert tier_rules.qualifications(programme, facts, zone) == _generic_qualifications(programme, facts, zone)


def _plain_tiers_at_payments(programme, quals, orders):
    """tiers_at_payments' earned rank and since, as written before (no paid tier)."""
    grace = timedelta(days=programme.grace_days)
    out = {}
    for order_id, paid_at in orders:
        before = (paid_at, order_id)
        earned, since = 0, None
        for q in quals:
            if (q.at, q.order_id) >= before:
                break
            if q.rank > earned and (q.kept_until is None or q.kept_until + grace > paid_at):
                earned, since = q.rank, q.at
        out[order_id] = (earned, since)
    return out


@settings(max_examples=400, deadline=None)
@given(programme=programmes, facts=facts_, zone=st.sampled_from(ZONES), data=st.data())
def test_the_tier_at_each_payment_is_the_plain_loops(programme, facts, zone, data):
    # Asked about the facts' own payments (ties on time and id included) and about other moments.
    asked = [(f.order_id, f.paid_at) for f in facts]
    asked += [(order_id + 100, at) for order_id, at in data.draw(st.lists(st.tuples(st.integers(0, 12), moments)))]
    quals = tier_rules.qualifications(programme, facts, zone)
    want = _plain_tiers_at_payments(programme, quals, asked)
    assert tier_rules.tiers_at_payments(programme, facts, [], zone, asked) == want
    assert tier_rules.tiers_at_payments(programme, facts, [], zone, asked, quals) == want


def _plain_crossings(threshold, orders):
    amount = Fraction(Decimal(threshold["amount"]))
    if threshold["period"] == "lifetime":
        totals = [sum((o.spend for o in orders), Fraction(0))]
    else:
        years = sorted({o.year for o in orders})
        totals = [sum((o.spend for o in orders if o.year == year), Fraction(0)) for year in years]
    times = [int(total // amount) for total in totals]
    return sum(t if threshold.get("repeat", True) else min(t, 1) for t in times)


def _plain_punches(card, orders):
    minimum = Fraction(Decimal(card.get("min_subtotal") or "0"))
    return sum(1 for o in orders if o.spend > 0 and o.spend >= minimum)


AMOUNTS = ["0.01", "0.5", "1", "50.00", "99.99", "100", "333.33", "2000.00"]
amounts = st.sampled_from(AMOUNTS)
# Whole cents mostly, the programme's amounts exactly, and the odd fractions a partly refunded line leaves
# (eligible * kept / quantity).
spends = st.one_of(
    st.builds(lambda cents: Fraction(cents, 100), st.integers(0, 60_000)),
    amounts.map(lambda amount: Fraction(Decimal(amount))),
    st.builds(
        lambda cents, kept, quantity: Fraction(cents, 100) * min(kept, quantity) / quantity,
        st.integers(0, 60_000),
        st.integers(0, 7),
        st.integers(1, 7),
    ),
)
histories = st.lists(
    st.builds(milestones.OrderSpend, st.integers(1, 10_000), st.sampled_from([2024, 2025, 2026]), spends), max_size=15
)


@settings(max_examples=400, deadline=None)
@given(history=histories, amount=amounts, period=st.sampled_from(["lifetime", "calendar_year"]),
       repeat=st.sampled_from([True, False, None]))  # fmt: skip
def test_threshold_crossings_are_the_plain_fraction_sums(history, amount, period, repeat):
    threshold = {"id": "t", "amount": amount, "period": period, "points": 1}
    if repeat is not None:
        threshold["repeat"] = repeat
    assert milestones.threshold_crossings(threshold, history) == _plain_crossings(threshold, history)
    assert milestones.threshold_crossings(threshold, iter(history)) == _plain_crossings(threshold, history)


@settings(max_examples=400, deadline=None)
@given(history=histories, minimum=st.one_of(st.none(), amounts, st.just("0")), every=st.integers(1, 5))
def test_punches_are_the_plain_fraction_comparisons(history, minimum, every):
    card = {"id": "c", "every": every, "min_subtotal": minimum, "points": 1}
    assert milestones.punches(card, history) == _plain_punches(card, history)
    assert milestones.punch_card_grants(card, history) == _plain_punches(card, history) // every


def test_exact_multiples_and_minimums_are_reached_not_missed():
    third = Fraction(100, 3)  # a third of a 100.00 line refunded twice over: no finite decimal
    history = [milestones.OrderSpend(1, 2026, third), milestones.OrderSpend(2, 2026, third * 2)]
    assert milestones.threshold_crossings({"amount": "100", "period": "lifetime"}, history) == 1
    assert milestones.threshold_crossings({"amount": "100.01", "period": "calendar_year"}, history) == 0
    card = {"every": 1, "min_subtotal": "33.33"}
    assert milestones.punches(card, history) == 2
    assert milestones.punches({**card, "min_subtotal": "50"}, [milestones.OrderSpend(3, 2026, Fraction(50))]) == 1
    assert milestones.punches({**card, "min_subtotal": "66.67"}, history) == 0
    assert milestones.punches({**card, "min_subtotal": None}, [milestones.OrderSpend(3, 2026, Fraction(0))]) == 0


# Spends as the lots give them and with other exponents (0 + value can differ from value in its exponent: a
# qualification's value must be the same Decimal, digit for digit, as it shows in the stored reason).
exponent_spends = st.one_of(
    st.builds(lambda cents: Decimal(cents) / 100, st.integers(0, 150_000)),
    st.builds(lambda units, exponent: Decimal(units).scaleb(exponent), st.integers(0, 1_500), st.integers(-3, 3)),
)
EASTERN = timezone(timedelta(hours=-5))  # the same instants under another offset: ties on paid_at across zones


def _fact(order_id, at, spend, points, counts, shifted):
    return tier_rules.OrderFact(
        order_id, f"#{order_id}", at.astimezone(EASTERN) if shifted else at, spend, points, counts
    )


exponent_facts = st.lists(
    st.builds(_fact, st.integers(1, 12), moments, exponent_spends, st.integers(0, 2_000), st.booleans(), st.booleans()),
    max_size=12,
    unique_by=lambda f: f.order_id,
)


@settings(max_examples=600, deadline=None)
@given(programme=programmes, facts=exponent_facts, zone=st.sampled_from(ZONES), data=st.data())
def test_qualifications_with_a_new_order_are_those_worked_out_anew(programme, facts, zone, data):
    """qualifications_with (the drain's member rules going on from the round's first pass, decision 0080) against
    qualifications from scratch over the facts plus the new order: the same list, digit for digit (repr), whenever
    it answers; and it answers exactly when the new order counts, is the latest by (paid at, order id) and the
    period is lifetime or calendar year. New orders after every known one, at the same instant as one (before or
    after it by id), among them, and around local New Years."""
    counted = [f for f in facts if f.counts]
    latest = max((f.paid_at for f in counted), default=NEW_YEARS[0])
    at = data.draw(
        st.one_of(
            moments,
            st.builds(lambda seconds: latest + timedelta(seconds=seconds), st.integers(0, 400 * 86_400)),
            st.builds(lambda seconds: latest + timedelta(seconds=seconds), st.integers(-3 * 86_400, 0)),
            st.just(latest),  # a tie with the latest counted order: the order id decides
            st.sampled_from([f.paid_at for f in facts] or [latest]),  # a tie with any known order
        )
    )
    order_id = data.draw(st.integers(1, 13).filter(lambda n: all(f.order_id != n for f in facts)))
    counts = data.draw(st.sampled_from([True, True, True, False]))
    new = _fact(order_id, at, data.draw(exponent_spends), data.draw(st.integers(0, 2_000)), counts,
                data.draw(st.booleans()))  # fmt: skip
    first = tier_rules.qualifications(programme, facts, zone)
    found = tier_rules.qualifications_with(programme, first, new, zone)
    expected = tier_rules.qualifications(programme, [*facts, new], zone)
    goes_on = (
        programme.period in ("lifetime", "calendar_year")
        and new.counts
        and all((f.paid_at, f.order_id) < (new.paid_at, new.order_id) for f in counted)
    )
    assert (found is not None) == goes_on
    if found is not None:
        assert repr(found) == repr(expected)
        assert found == expected
        assert first == tier_rules.qualifications(programme, facts, zone)  # the first pass's list left as it was


def test_a_new_order_in_the_last_year_or_a_new_one_goes_on_from_the_last_running_value():
    """Worked examples of qualifications_with: the same local year (running on), a new local year in the shop's
    zone though not yet in UTC (from zero), a tie on paid at decided by the order id."""
    zone = ZoneInfo("Pacific/Auckland")
    programme = _programme("spend", "calendar_year", [5, 20], 0)  # thresholds 50 and 200
    paid = datetime(2025, 12, 31, 9, tzinfo=UTC)  # 22:00 on 31 December in Auckland
    facts = [tier_rules.OrderFact(7, "#7", paid, Decimal("40.00"), 0, True)]
    first = tier_rules.qualifications(programme, facts, zone)
    same_year = tier_rules.OrderFact(8, "#8", paid + timedelta(hours=1), Decimal("15.00"), 0, True)
    assert tier_rules.qualifications_with(programme, first, same_year, zone)[-1][:2] == (1, Decimal("55.00"))
    next_year = tier_rules.OrderFact(9, "#9", paid + timedelta(hours=2), Decimal("15.00"), 0, True)  # 2026 there
    found = tier_rules.qualifications_with(programme, first, next_year, zone)
    assert found[-1][:2] == (0, Decimal("15.00")) and found[-1].period_key == "2026"
    assert tier_rules.qualifications_with(programme, first, tier_rules.OrderFact(6, "#6", paid, Decimal(1), 0, True),
                                          zone) is None  # fmt: skip
    tied = tier_rules.qualifications_with(
        programme, first, tier_rules.OrderFact(8, "#8", paid, Decimal(1), 0, True), zone
    )
    assert tied == tier_rules.qualifications(
        programme, [*facts, tier_rules.OrderFact(8, "#8", paid, Decimal(1), 0, True)], zone
    )
