"""A small shop's reports computed by hand: roll-forward, tie-out, breakage cohorts, deferred revenue, journal, KPIs.

The shop (Europe/Paris, EUR) and its three members, A, B and C; every posting, with its local day:

  2025-01-05  A earns 1000 on order 1 (orders)
  2025-01-20  B earns 500 on order 2
  2025-01-25  A redeems 500 for 5.00 off (issued)
  2025-02-01  A earns 200 on order 3 (posted 2025-01-31 23:30 UTC: already February in Paris)
  2025-02-10  B redeems 500 for 5.00 off (issued)
  2025-02-12  order 2 is refunded after B spent its points: reverse -500 (B's balance goes to -500)
  2025-02-15  support gives C 100 (adjust)
  2025-03-03  C gets a 50-point birthday bonus (bonus, source 'birthday')
  2025-03-05  A redeems 200 for 2.00 off; the code fails, 2025-03-06 the 200 come back (return)
  2025-03-28  C earns 400 on order 4, pending until 2025-04-10
  2025-03-31  300 of A's points expire

Orders' sales (line items after discounts): 1: 100.00, 2: 50.00, 3: 25.00 (with A's 5.00-off code), 4: 40.00.

Balances: A 400, B -500, C 550; 450 in all. The implied point value: 10.00 for the 1,000 points of the two issued
fixed-amount redemptions = 0.01 (the failed one does not count).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from plugin import ledger
from plugin.db import transaction
from plugin.models import Member, Order, Redemption, Shop
from plugin.services import report_rollups, reports
from plugin.services.errors import Invalid


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _post(session, shop_id, monkeypatch, member_id, kind, points, source_type, when, key, available_at=None):
    monkeypatch.setattr("plugin.ledger.postings.utcnow", lambda: at(when))
    ledger.post(
        session,
        shop_id,
        ledger.Entry(
            member_id=member_id,
            kind=kind,
            points=points,
            source_type=source_type,
            source_id=key,
            idempotency_key=key,
            rule_version="test",
            available_at=at(available_at) if available_at else None,
        ),
    )


def _redemption(session, shop_id, member_id, points, amount, status, when):
    session.add(
        Redemption(
            shop_id=shop_id,
            member_id=member_id,
            reward={"id": "r", "kind": "fixed_amount", "points": points, "amount": amount, "title": "off"},
            reward_id="r",
            points=points,
            status=status,
            code=f"CODE-{member_id}-{when}",
            created_at=at(when),
            starts_at=at(when),
        )
    )


@pytest.fixture
def small_shop(settings, shop, monkeypatch) -> int:
    with transaction(settings.database_url) as session:
        row = session.get(Shop, shop)
        row.time_zone, row.currency = "Europe/Paris", "EUR"
        members = {}
        for name, customer, enrolled in (("A", 1, "2025-01-05T09:00"), ("B", 2, "2025-01-20T09:00"),
                                         ("C", 3, "2025-02-15T09:00")):  # fmt: skip
            member = Member(shop_id=shop, customer_id=customer, enrolled_at=at(enrolled))
            session.add(member)
            session.flush()
            members[name] = member.id
        a, b, c = members["A"], members["B"], members["C"]
        a_reward = f"CODE-{a}-2025-01-25T10:00"  # A's 5.00-off code, used on order 3
        for order_id, member_id, paid, sales, code in (
            (1, a, "2025-01-05T10:00", "100.00", None), (2, b, "2025-01-20T10:00", "50.00", None),
            (3, a, "2025-01-31T23:30", "25.00", a_reward), (4, c, "2025-03-28T10:00", "40.00", None),
        ):  # fmt: skip
            session.add(Order(shop_id=shop, order_id=order_id, member_id=member_id, paid_at=at(paid),
                              sales=Decimal(sales), reward_code=code))  # fmt: skip
        steps = [
            (a, "earn", 1000, "order", "2025-01-05T10:00", None),
            (b, "earn", 500, "order", "2025-01-20T10:00", None),
            (a, "redeem", -500, "redemption", "2025-01-25T10:00", None),
            (a, "earn", 200, "order", "2025-01-31T23:30", None),
            (b, "redeem", -500, "redemption", "2025-02-10T10:00", None),
            (b, "reverse", -500, "refund", "2025-02-12T10:00", None),
            (c, "adjust", 100, "support", "2025-02-15T10:00", None),
            (c, "bonus", 50, "birthday", "2025-03-03T10:00", None),
            (a, "redeem", -200, "redemption", "2025-03-05T10:00", None),
            (a, "return", 200, "redemption", "2025-03-06T10:00", None),
            (c, "earn", 400, "order", "2025-03-28T10:00", "2025-04-10T10:00"),
            (a, "expire", -300, "expiry", "2025-03-31T10:00", None),
        ]
        for n, (member_id, kind, points, source, when, available) in enumerate(steps):
            _post(session, shop, monkeypatch, member_id, kind, points, source, when, f"step-{n}", available)
        _redemption(session, shop, a, 500, "5.00", "issued", "2025-01-25T10:00")
        _redemption(session, shop, b, 500, "5.00", "issued", "2025-02-10T10:00")
        _redemption(session, shop, a, 200, "2.00", "failed", "2025-03-05T10:00")
    return shop


def _run(settings, report, query):
    with transaction(settings.database_url) as session:
        shop = session.get(Shop, session.query(Shop.id).scalar())
        return report(session, shop, reports.load_query(query), now=at("2026-06-01T00:00"))


def test_march_roll_forward_matches_the_hand_computation(settings, small_shop):
    result = _run(settings, reports.liability, {"month": "2025-03"})
    # Opening: A 1000 - 500 + 200 = 700, B 500 - 500 - 500 = -500, C 100: 300 points.
    assert result["opening"] == {"points": 300, "money": "3.00"}
    assert [(line["line"], line["points"], line["money"]) for line in result["lines"]] == [
        ("issued.bonus.birthday", 50, "0.50"),
        ("issued.orders", 400, "4.00"),
        ("redeemed", -200, "-2.00"),
        ("returned", 200, "2.00"),
        ("expired", -300, "-3.00"),
    ]
    assert result["issued"] == {"points": 450, "money": "4.50"}
    assert result["closing"] == {"points": 450, "money": "4.50"}  # 300 + 50 + 400 - 200 + 200 - 300
    assert result["pending"] == {"points": 400, "money": "4.00"}  # C's order 4, held until 10 April
    assert (result["point_value"], result["point_value_source"]) == ("0.01", "redemptions")
    assert result["period"] == {"start": "2025-03-01", "end": "2025-03-31", "time_zone": "Europe/Paris"}
    tie = result["tie_out"]
    assert (tie["closing"], tie["posted_after_end"], tie["ledger_balances"], tie["difference"], tie["ok"]) == (
        450, 0, 450, 0, True,
    )  # fmt: skip


def test_february_holds_the_refund_after_redemption_and_the_late_utc_posting(settings, small_shop):
    result = _run(settings, reports.liability, {"month": "2025-02", "point_value": "0.02", "deep": True})
    assert result["opening"]["points"] == 1000  # January: 1000 + 500 - 500
    assert [(line["line"], line["points"], line["money"]) for line in result["lines"]] == [
        ("issued.orders", 200, "4.00"),  # posted 31 January 23:30 UTC, 1 February in Paris
        ("issued.support", 100, "2.00"),
        ("reversed", -500, "-10.00"),
        ("redeemed", -500, "-10.00"),
    ]
    assert result["closing"] == {"points": 300, "money": "6.00"}
    assert result["point_value_source"] == "query"
    tie = result["tie_out"]
    assert (tie["closing"], tie["posted_after_end"], tie["ledger_balances"], tie["ok"]) == (300, 150, 450, True)
    assert (tie["postings_before_end"], tie["deep_difference"]) == (300, 0)


def test_breakage_cohorts_and_contract_liability_by_hand(settings, small_shop):
    # Month flows (granted, redeemed, consumed): January (1500, 500, 0); February 200 + 100 - 500 = -200 granted,
    # so (0, 500, 200); March (450, 0, 300). Cohorts: January holds points [0, 1500), March [1500, 1950).
    # Consumption: January redeems [0, 500); February consumes [500, 700) and redeems [700, 1200); March
    # consumes [1200, 1500). January's cohort: 500 + 500 = 1000 redeemed within 12 months; March's: none.
    result = _run(settings, reports.breakage, {"start": "2025-01-01", "end": "2026-03-31"})
    assert result["cohorts"] == [
        {"month": "2025-01", "issued": 1500, "redeemed_12": 1000, "redeemed_24": 1000,
         "breakage_12": "0.3333", "breakage_24": None},
        {"month": "2025-03", "issued": 450, "redeemed_12": 0, "redeemed_24": 0,
         "breakage_12": "1.0000", "breakage_24": None},
    ]  # fmt: skip
    assert result["breakage_12"] == "0.4872"  # 1 - 1000 / 1950
    assert result["breakage_24"] is None
    assert (result["expected_breakage"], result["basis"]) == ("0.4872", "12_months")
    assert result["outstanding_points"] == 450
    assert result["contract_liability"] == "2.31"  # 450 x 0.01 x 0.5128 = 2.3076


def test_no_cohort_has_matured_so_no_breakage_is_expected(settings, small_shop):
    result = _run(settings, reports.breakage, {"month": "2025-03"})
    assert (result["expected_breakage"], result["basis"], result["breakage_12"]) == ("0", "no_mature_cohort", None)
    assert result["contract_liability"] == "4.50"


def test_journal_by_hand_with_breakage(settings, small_shop):
    # b = 0.4872, 1 - b = 0.5128, 0.01 a point.
    # January: deferral 1500 x 0.005128 = 7.692 -> 7.69; redemption 500 x 0.005128 = 2.564 -> 2.56; breakage
    #   500 x 0.004872 = 2.436 -> 2.44; closing 1000 -> 5.13; remeasurement 0 + 7.69 - 2.56 - 2.44 - 5.13 = -2.44.
    # February: opening 5.13; deferral 300 -> 1.5384 -> 1.54; reversal 500 -> 2.56; redemption 2.56; breakage
    #   2.44; closing 300 -> 1.54; remeasurement 5.13 + 1.54 - 2.56 - 2.56 - 2.44 - 1.54 = -2.43.
    # March: opening 1.54; deferral 450 -> 2.3076 -> 2.31; nothing redeemed (200 out, 200 back); closing 450 ->
    #   2.31; remeasurement 1.54 + 2.31 - 2.31 = 1.54 (the 300 expired points). Later months move nothing.
    result = _run(settings, reports.journal, {"start": "2025-01-01", "end": "2026-03-31", "point_value": "0.01"})
    rows = [(r["date"], r["account"][:4], r["debit"], r["credit"]) for r in result["lines"]]
    assert rows == [
        ("2025-01-31", "4000", "7.69", "0.00"), ("2025-01-31", "2400", "0.00", "7.69"),
        ("2025-01-31", "2400", "2.56", "0.00"), ("2025-01-31", "4010", "0.00", "2.56"),
        ("2025-01-31", "2400", "2.44", "0.00"), ("2025-01-31", "4020", "0.00", "2.44"),
        ("2025-01-31", "4020", "2.44", "0.00"), ("2025-01-31", "2400", "0.00", "2.44"),
        ("2025-02-28", "4000", "1.54", "0.00"), ("2025-02-28", "2400", "0.00", "1.54"),
        ("2025-02-28", "2400", "2.56", "0.00"), ("2025-02-28", "4000", "0.00", "2.56"),
        ("2025-02-28", "2400", "2.56", "0.00"), ("2025-02-28", "4010", "0.00", "2.56"),
        ("2025-02-28", "2400", "2.44", "0.00"), ("2025-02-28", "4020", "0.00", "2.44"),
        ("2025-02-28", "4020", "2.43", "0.00"), ("2025-02-28", "2400", "0.00", "2.43"),
        ("2025-03-31", "4000", "2.31", "0.00"), ("2025-03-31", "2400", "0.00", "2.31"),
        ("2025-03-31", "2400", "1.54", "0.00"), ("2025-03-31", "4020", "0.00", "1.54"),
    ]  # fmt: skip
    # The liability account ends at the measured contract liability: 450 x 0.01 x 0.5128 = 2.31.
    liability = sum(
        Decimal(r["credit"]) - Decimal(r["debit"]) for r in result["lines"] if r["account"].startswith("2400")
    )
    assert liability == Decimal("2.31")
    csv_text = reports.to_csv(result["lines"], reports.JOURNAL_COLUMNS)
    assert csv_text.splitlines()[0] == "date,account,debit,credit,memo"
    assert csv_text.splitlines()[1].startswith("2025-01-31,4000 Sales revenue,7.69,0.00,1500 points issued at 0.01")


def test_kpis_by_hand(settings, small_shop):
    result = _run(settings, reports.kpis, {"start": "2025-01-01", "end": "2025-03-31"})
    totals = result["totals"]
    # Issued: orders 1000 + 500 + 200 + 400, support 100, birthday 50 = 2250; redeemed 500 + 500 + 200 - 200.
    assert totals == {
        "points_issued": 2250, "points_redeemed": 1000, "points_expired": 300, "redemption_rate": "0.4444",
        "members": 3, "new_members": 3,
        "active_30": 1,  # C's order 4 (28 March); the window ends 1 April 00:00 in Paris
        "active_90": 3,
        # Redeemers (a reward issued before the end): A (orders 1 and 3) and B (order 2); C is not one.
        "buyers_redeemers": 2, "repeat_rate_redeemers": "0.5000", "orders_redeemers": 3,
        "aov_redeemers": "58.33",  # (100 + 25 + 50) / 3
        "buyers_non_redeemers": 1, "repeat_rate_non_redeemers": "0.0000", "orders_non_redeemers": 1,
        "aov_non_redeemers": "40.00",
        # Order 3 used A's 5.00-off code: 25.00 of sales for 5.00 of reward.
        "reward_orders": 1, "reward_order_revenue": "25.00", "reward_cost": "5.00", "roi": "5.00",
        "nps": None, "nps_responses": 0, "nps_promoters": 0, "nps_detractors": 0,  # no survey answered
    }  # fmt: skip
    assert [(m["month"], m["points_issued"], m["points_redeemed"], m["members"], m["new_members"])
            for m in result["months"]] == [
        ("2025-01", 1500, 500, 2, 2), ("2025-02", 300, 500, 3, 1), ("2025-03", 450, 0, 3, 0),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"start": "2025-03-01", "end": "2025-02-01"}, "end", "the end is before the start"),
        ({"start": "2020-01-01", "end": "2025-01-01"}, "end", "the range is longer than 5 years"),
        ({"point_value": "0"}, "point_value", "must be greater than 0"),
        ({"point_value": "-0.01"}, "point_value", "must be greater than 0"),
        ({"month": "2025-13"}, "month", "a month as YYYY-MM"),
        ({"start": "yesterday"}, "start", "Not a valid date."),
    ],
)
def test_bad_input_is_refused_with_a_message_per_field(query, field, message):
    with pytest.raises(Invalid) as refused:
        reports.load_query(query)
    assert refused.value.status == 400
    assert refused.value.fields == {field: [message]}


def test_an_unknown_shop_is_refused(settings, shop):
    with transaction(settings.database_url) as session, pytest.raises(Invalid) as refused:
        reports.find_shop(session, "nobody.myshopify.com")
    assert refused.value.fields == {"shop": ["no shop nobody.myshopify.com"]}


def test_a_shop_without_data_answers_zeros(settings, shop):
    for report in (reports.liability, reports.breakage, reports.journal, reports.kpis):
        result = _run(settings, report, {"month": "2025-03"})
        assert "error" not in result
    liability = _run(settings, reports.liability, {"month": "2025-03"})
    assert (liability["opening"]["points"], liability["closing"]["points"], liability["lines"]) == (0, 0, [])
    assert liability["tie_out"]["ok"] is True
    assert _run(settings, reports.journal, {"month": "2025-03"})["lines"] == []
    assert _run(settings, reports.kpis, {"month": "2025-03"})["totals"]["members"] == 0


def test_compaction_and_rebuild_change_no_figure(settings, small_shop):
    before = _run(settings, reports.liability, {"month": "2025-02"})
    with transaction(settings.database_url) as session:
        assert report_rollups.compact(session, small_shop) is True
    assert _run(settings, reports.liability, {"month": "2025-02"}) == before
    with transaction(settings.database_url) as session:
        report_rollups.rebuild(session, session.get(Shop, small_shop))
    assert _run(settings, reports.liability, {"month": "2025-02"}) == before


def test_nps_and_tier_kpis_by_hand(settings, small_shop):
    from plugin.models import SurveyAnswer, TierMove

    with transaction(settings.database_url) as session:
        shop = session.get(Shop, small_shop)
        shop.tiers = {"tiers": [{"id": "silver", "name": "Silver"}, {"id": "gold", "name": "Gold"}]}
        members = {m.customer_id: m for m in session.query(Member)}
        members[1].tier = "gold"
        for member, seq, old, new, when in (
            (members[2], 1, None, "silver", "2025-01-20T10:00"), (members[1], 1, None, "silver", "2025-02-01T10:00"),
            (members[2], 2, "silver", None, "2025-02-12T10:00"), (members[1], 2, "silver", "gold", "2025-03-01T10:00"),
            (members[3], 1, None, "silver", "2025-04-02T10:00"),  # after the period
        ):  # fmt: skip
            session.add(TierMove(shop_id=shop.id, member_id=member.id, seq=seq, from_tier=old, to_tier=new,
                                 reason="test", tiers_version=1, occurred_at=at(when)))  # fmt: skip
        for n, (score, when) in enumerate(
            [(10, "2025-02-20T10:00"), (10, "2025-03-02T10:00"), (9, "2025-03-03T10:00"), (8, "2025-03-04T10:00"),
             (6, "2025-03-05T10:00"), (3, "2025-03-31T21:59"), (0, "2025-03-31T22:00")]  # the last: April in Paris
        ):  # fmt: skip
            session.add(
                SurveyAnswer(shop_id=shop.id, completion_key=f"c{n}", question_key="nps", member_id=members[1].id,
                             survey_id="nps", score=score, answered_at=at(when))
            )  # fmt: skip
        session.add(
            SurveyAnswer(shop_id=shop.id, completion_key="text", question_key="why", member_id=members[1].id,
                         survey_id="nps", score=None, answer="great", answered_at=at("2025-03-02T10:00"))
        )  # fmt: skip
    result = _run(settings, reports.kpis, {"start": "2025-01-01", "end": "2025-03-31"})
    # Six scores in the period: promoters 10, 10, 9; passive 8; detractors 6, 3. (3 - 2) / 6 = 16.7% -> 17.
    assert {k: result["totals"][k] for k in ("nps", "nps_responses", "nps_promoters", "nps_detractors")} == {
        "nps": 17, "nps_responses": 6, "nps_promoters": 3, "nps_detractors": 2,
    }  # fmt: skip
    # February: one promoter = 100; March: 2 promoters, 2 detractors of 5 = 0; January: no answers.
    assert [(m["month"], m["nps"], m["nps_responses"]) for m in result["months"]] == [
        ("2025-01", None, 0), ("2025-02", 100, 1), ("2025-03", 0, 5),
    ]  # fmt: skip
    tiers = result["tiers"]
    assert tiers["distribution"] == [
        {"tier": None, "name": "no tier", "members": 2},
        {"tier": "silver", "name": "Silver", "members": 0},
        {"tier": "gold", "name": "Gold", "members": 1},
    ]
    assert (tiers["moves"], tiers["moves_up"], tiers["moves_down"]) == (4, 3, 1)
    assert {(p["from"], p["to"], p["members"]) for p in tiers["moves_by_pair"]} == {
        (None, "silver", 2), ("silver", None, 1), ("silver", "gold", 1),
    }  # fmt: skip


def test_referral_funnel_by_hand(settings, small_shop):
    from plugin.models import Referral, ReferralVisit

    with transaction(settings.database_url) as session:
        advocate = session.query(Member).filter_by(customer_id=1).one().id
        for n, (status, when) in enumerate(
            [
                ("issued", "2025-02-01T10:00"),
                ("issued", "2025-02-02T10:00"),
                ("none", "2025-02-03T10:00"),
                ("failed", "2025-03-01T10:00"),
                ("issued", "2025-04-01T10:00"),
            ]
        ):  # the last: after the period
            session.add(
                ReferralVisit(
                    shop_id=small_shop,
                    visit_id=f"v{n}",
                    advocate_member_id=advocate,
                    request_key=f"k{n}",
                    code_status=status,
                    created_at=at(when),
                )
            )
        for order_id, status, reason, held, when in [
            (101, "qualified", None, 100, "2025-02-05T10:00"),  # rewarded
            (102, "qualified", None, 0, "2025-02-06T10:00"),  # qualified, its points still pending
            (103, "blocked", "same_address", 0, "2025-02-07T10:00"),
            (104, "blocked", "not_first_order", 0, "2025-02-08T10:00"),  # not a first order: not in the funnel
            (105, "void", None, 0, "2025-03-02T10:00"),
            (106, "reversed", None, 0, "2025-03-03T10:00"),
        ]:
            session.add(
                Referral(
                    shop_id=small_shop,
                    order_id=order_id,
                    advocate_member_id=advocate,
                    matched_by="friend_code",
                    ordered_at=at(when),
                    status=status,
                    block_reason=reason,
                    points_held=held,
                )
            )
    funnel = _run(settings, reports.kpis, {"start": "2025-01-01", "end": "2025-03-31"})["referrals"]
    assert funnel == {
        "links_opened": 4, "friend_codes_issued": 2, "first_orders": 5, "qualified": 2, "rewarded": 1,
        "blocked": 2, "void": 1, "reversed": 1,
    }  # fmt: skip
