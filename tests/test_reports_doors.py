"""The reports through their doors: the admin API (JSON and CSV, 400 with per-field messages) and the CLI."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

from plugin.db import transaction
from plugin.models import Shop
from tests.conftest import SHOP
from tests.test_admin_api import call, session_token
from tests.test_reports_worked_example import small_shop  # noqa: F401  (the worked example's shop fixture)


def _run_cli(app, *args: str):
    return app.test_cli_runner().invoke(args=["loyalty", "reports", *args])


def test_the_admin_api_answers_the_march_roll_forward(client, small_shop):  # noqa: F811
    answer = call(client, "GET", "reports/liability?month=2025-03", session_token())
    assert answer.status_code == 200
    body = answer.get_json()
    assert (body["opening"]["points"], body["closing"]["points"], body["tie_out"]["ok"]) == (300, 450, True)


def test_the_journal_downloads_as_gl_csv(client, small_shop):  # noqa: F811
    path = "reports/journal?start=2025-01-01&end=2026-03-31&point_value=0.01&format=csv"
    answer = call(client, "GET", path, session_token())
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert list(rows[0]) == ["date", "account", "debit", "credit", "memo"]
    assert (rows[0]["date"], rows[0]["account"], rows[0]["debit"]) == ("2025-01-31", "4000 Sales revenue", "7.69")
    assert len(rows) == 22


def test_kpis_and_breakage_answer_as_json_and_csv(client, small_shop):  # noqa: F811
    token = session_token()
    kpis = call(client, "GET", "reports/kpis?start=2025-01-01&end=2025-03-31", token).get_json()
    assert kpis["totals"]["points_issued"] == 2250
    kpi_csv = call(client, "GET", "reports/kpis?start=2025-01-01&end=2025-03-31&format=csv", token)
    assert kpi_csv.get_data(as_text=True).splitlines()[1].startswith("2025-01,2,2,1500,500,0,")
    cohorts = call(client, "GET", "reports/breakage?start=2025-01-01&end=2026-03-31&format=csv", token)
    assert cohorts.get_data(as_text=True).splitlines()[1] == "2025-01,1500,1000,1000,0.3333,"


def test_bad_report_queries_get_400_with_a_message_per_field(client, shop):
    token = session_token()
    for query, field in (
        ("start=2025-03-01&end=2025-02-01", "end"),
        ("start=2019-01-01&end=2025-01-01", "end"),
        ("point_value=0", "point_value"),
        ("point_value=-1", "point_value"),
        ("point_value=abc", "point_value"),
        ("month=2025-3", "month"),
        ("format=xls", "format"),
    ):
        answer = call(client, "GET", f"reports/liability?{query}", token)
        assert answer.status_code == 400, query
        error = answer.get_json()["error"]
        assert error["code"] == "invalid_request" and list(error["fields"]) == [field], query
        assert error["message"]


def test_a_shop_without_data_gets_zeros_from_every_report(client, shop):
    token = session_token()
    for report in ("liability", "breakage", "journal", "kpis"):
        answer = call(client, "GET", f"reports/{report}?month=2025-03", token)
        assert answer.status_code == 200, report
    liability = call(client, "GET", "reports/liability", token).get_json()
    assert (liability["closing"]["points"], liability["tie_out"]["ok"]) == (0, True)
    # Nothing redeemed yet: the value comes from the catalogue's fixed-amount reward (500 points for 5.00).
    assert (liability["point_value"], liability["point_value_source"]) == ("0.01", "catalogue")


def test_the_merchant_sets_the_point_value(client, small_shop, settings):  # noqa: F811
    token = session_token()
    assert call(client, "GET", "reports/settings", token).get_json() == {"point_value": None}
    refused = call(client, "PUT", "reports/settings", token, json={"point_value": "0"})
    assert refused.status_code == 400
    assert refused.get_json()["error"]["fields"] == {"point_value": ["must be greater than 0"]}
    assert call(client, "PUT", "reports/settings", token, json={"point_value": "0.02"}).status_code == 200
    body = call(client, "GET", "reports/liability?month=2025-03", token).get_json()
    assert (body["point_value"], body["point_value_source"], body["closing"]["money"]) == ("0.02", "merchant", "9.00")


def test_the_cli_prints_json_and_csv_and_refuses_bad_input(app, small_shop):  # noqa: F811
    result = _run_cli(app, "liability", SHOP, "--month", "2025-03")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["closing"] == {"points": 450, "money": "4.50"}
    result = _run_cli(app, "journal", SHOP, "--month", "2025-03", "--format", "csv")
    assert result.output.splitlines()[0] == "date,account,debit,credit,memo"
    result = _run_cli(app, "kpis", SHOP, "--start", "2025-01-01", "--end", "2025-03-31", "--format", "csv")
    assert result.output.splitlines()[0].startswith("month,members,new_members,points_issued")
    for args, field in (
        (("liability", SHOP, "--start", "2025-03-01", "--end", "2025-02-01"), "end"),
        (("liability", SHOP, "--start", "2019-01-01", "--end", "2025-01-01"), "end"),
        (("liability", SHOP, "--point-value", "0"), "point_value"),
        (("liability", "nobody.myshopify.com"), "shop"),
    ):
        result = _run_cli(app, *args)
        assert result.exit_code == 1 and field in result.output, args
    assert json.loads(_run_cli(app, "point-value", SHOP, "--set", "0.05").output) == {"point_value": "0.05"}
    with transaction(app.extensions["loyalty"].database_url) as session:
        assert session.query(Shop).count() == 1


def test_a_paid_order_keeps_its_sales_and_the_loyalty_code_it_used(client, shop, settings):
    from plugin.models import Member, Order, Redemption
    from tests import builders
    from tests.conftest import deliver

    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(11, "80.00")]))
    with transaction(settings.database_url) as session:
        member = session.query(Member).one()
        session.add(Redemption(shop_id=shop, member_id=member.id, reward={"kind": "fixed_amount", "amount": "5.00"},
                               points=500, status="issued", code="PTS-B-ABCDEFGH"))  # fmt: skip
    paid = builders.order(2, 7001, [builders.line(21, "30.00", 2, discount="5.00"), builders.line(22, "10.00")])
    paid["discount_codes"] = [{"code": "WELCOME10", "amount": "1.00", "type": "fixed_amount"},
                              {"code": "pts-b-abcdefgh", "amount": "5.00", "type": "fixed_amount"}]  # fmt: skip
    deliver(client, "orders/paid", paid)
    with transaction(settings.database_url) as session:
        orders = {o.order_id: (o.sales, o.reward_code) for o in session.query(Order)}
    # Order 2: 2 x 30.00 - 5.00 + 10.00 = 65.00, and the loyalty code among its codes (matched whatever its case).
    assert orders == {1: (Decimal("80.00"), None), 2: (Decimal("65.00"), "PTS-B-ABCDEFGH")}
