"""Importing balances from other loyalty apps' CSV exports: once, resumable, undoable, and safe with bad files."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from plugin import ledger
from plugin.db import transaction
from plugin.models import Member, Posting, Shop
from plugin.programme import events
from plugin.services import accrual, shops
from plugin.services.imports import batches
from plugin.services.imports.tables import ImportRow
from tests import builders
from tests.conftest import SHOP, deliver

OTHER_SHOP = "other-shop.myshopify.com"

# A sample export per supported layout: the same three shoppers, as each app writes them.
SAMPLES = {
    "smile": "email,points,First name,VIP Tier\r\nada@example.com,120,Ada,Gold\r\nbob@example.com,35,Bob,\r\n",
    "loyaltylion": (
        "Customer ID,Email,Points approved,Points pending,Points lifetime,Tier,Birthday\n"
        "7001,ada@example.com,120,15,400,Gold,1990-12-10\n"
        "7002,bob@example.com,35,0,35,,\n"
    ),
    "yotpo": (
        "Email,First Name,Points Balance,Points Spent,Birthday (MM/DD) or (MM/DD/YYYY),Referral Link\n"
        "ada@example.com,Ada,120,280,12/10/1990,https://x.test/r/1\n"
        "bob@example.com,Bob,35,0,03/04,https://x.test/r/2\n"
    ),
    "rivo": (
        "Email,Points Balance,Birthdate,VIP Tier,Activation Date,Credits Balance\n"
        "ada@example.com,120,1990-12-10,Gold,2024-01-01,5.00\n"
        "bob@example.com,35,,,2024-02-01,0\n"
    ),
    "ours": (
        "customer_id,email,points,lifetime_points,lifetime_spend,birthday,tier,expires_on\n"
        "7001,ada@example.com,120,400,1234.50,1990-12-10,Gold,2027-06-30\n"
        "7002,bob@example.com,35,,,,,\n"
    ),
}
TITLES = {"smile": "Smile.io", "loyaltylion": "LoyaltyLion", "yotpo": "Yotpo", "rivo": "Rivo", "ours": "our export"}


def enrol(settings, customer_id: int, email: str | None, domain: str = SHOP) -> int:
    with transaction(settings.database_url) as session:
        shop = shops.get(session, domain)
        return accrual.enrol(session, shop.id, events.Customer(customer_id, email))


def run(settings, shop_id: int, text: str | bytes, source: str, **options):
    data = text if isinstance(text, bytes) else text.encode()
    options.setdefault("dry_run", False)
    options.setdefault("actor", "test")
    return batches.run(settings.database_url, shop_id, io.BytesIO(data), source=source, filename="x.csv", **options)


def balances(settings, domain: str = SHOP) -> dict[int, int]:
    with transaction(settings.database_url) as session:
        shop = shops.get(session, domain)
        return dict(session.execute(select(Member.customer_id, Member.balance).where(Member.shop_id == shop.id)).all())


def import_postings(settings) -> list[Posting]:
    with transaction(settings.database_url) as session:
        return list(session.scalars(select(Posting).where(Posting.kind == "import").order_by(Posting.id)))


def report(settings, shop_id: int, batch_id: int) -> dict:
    with transaction(settings.database_url) as session:
        return batches.report(session, session.get(Shop, shop_id), batches.get(session, shop_id, batch_id))


def rows(settings, batch_id: int) -> dict[int, ImportRow]:
    with transaction(settings.database_url) as session:
        found = session.scalars(select(ImportRow).where(ImportRow.batch_id == batch_id))
        return {row.line: row for row in found}


def errors(settings, shop_id: int, batch_id: int) -> list[list[str]]:
    with transaction(settings.database_url) as session:
        text = "".join(batches.error_file(session, shop_id, batch_id))
    return list(csv.reader(io.StringIO(text)))


@pytest.fixture
def members(settings, shop):
    """Ada (7001) and Bob (7002) are members of the shop already."""
    enrol(settings, 7001, "ada@example.com")
    enrol(settings, 7002, "bob@example.com")
    return shop


@pytest.mark.parametrize("source", sorted(SAMPLES))
def test_a_sample_export_of_each_app_posts_opening_balances_that_explain_themselves(settings, members, source):
    day_before = datetime.now(UTC).date().isoformat()  # read around the import: a run may cross midnight (UTC)
    outcome = run(settings, members, SAMPLES[source], source)
    day_after = datetime.now(UTC).date().isoformat()

    assert balances(settings) == {7001: 120, 7002: 35}
    postings = import_postings(settings)
    assert [p.points for p in postings] == [120, 35]
    (note,) = {p.note for p in postings}
    assert note in {f"imported from {TITLES[source]}, {day}" for day in (day_before, day_after)}
    assert {p.idempotency_key for p in postings} == {f"import:{outcome.batch_id}:2", f"import:{outcome.batch_id}:3"}
    with transaction(settings.database_url) as session:
        assert ledger.verify(session) == []


def test_columns_no_capability_reads_yet_are_kept_on_the_import_row(settings, members):
    outcome = run(settings, members, SAMPLES["ours"], "ours")

    ada = rows(settings, outcome.batch_id)[2]
    assert (ada.lifetime_points, ada.lifetime_spend_minor, ada.birthday, ada.tier, str(ada.expires_on)) == (
        400,
        123450,
        "1990-12-10",
        "Gold",
        "2027-06-30",
    )
    yotpo = run(settings, members, SAMPLES["yotpo"].replace("120", "121"), "yotpo")
    assert rows(settings, yotpo.batch_id)[3].birthday == "--03-04"  # Yotpo writes MM/DD, without a year


def test_importing_the_same_file_again_resumes_the_batch_and_never_doubles(settings, members):
    first = run(settings, members, SAMPLES["rivo"], "rivo")
    again = run(settings, members, SAMPLES["rivo"], "rivo")

    assert again.batch_id == first.batch_id and again.resumed
    assert balances(settings) == {7001: 120, 7002: 35}
    assert len(import_postings(settings)) == 2


def big_file(count: int) -> str:
    lines = ["customer_id,email,points"]
    lines += [f"{9000 + i},s{i}@example.com,{i + 1}" for i in range(count)]
    return "\n".join(lines) + "\n"


def test_a_crash_mid_import_resumed_ends_exactly_where_an_uninterrupted_import_does(settings, shop):
    for i in range(120):
        enrol(settings, 9000 + i, f"s{i}@example.com")
    text = big_file(140)  # 120 members, 20 shoppers not yet known; chunks of 60 post in bulk (COPY on PostgreSQL)
    crashes = {"left": 1}

    def crash_after_the_first_chunk(line: int, lines: int) -> None:
        crashes["left"] -= 1
        if crashes["left"] == 0:
            raise RuntimeError("worker killed")

    with pytest.raises(RuntimeError):
        run(settings, shop, text, "ours", chunk_rows=60, on_progress=crash_after_the_first_chunk)
    half = balances(settings)
    assert sum(half.values()) == sum(range(1, 61))  # the committed first chunk, and nothing of the second
    assert len(import_postings(settings)) == 60

    resumed = run(settings, shop, text, "ours", chunk_rows=60)

    assert resumed.resumed
    assert balances(settings) == {9000 + i: i + 1 for i in range(120)}
    assert len(import_postings(settings)) == 120
    done = report(settings, shop, resumed.batch_id)
    assert (done["status"], done["rows"], done["matched"], done["pending"], done["invalid"]) == (
        "done",
        140,
        120,
        20,
        0,
    )
    assert done["points_matched"] == sum(range(1, 121))
    with transaction(settings.database_url) as session:
        assert ledger.verify(session) == []


def test_undo_reverses_the_whole_batch_with_an_audited_reversal_and_cancels_pending_rows(settings, members):
    text = SAMPLES["ours"] + "7003,cy@example.com,50,,,,,\n"
    outcome = run(settings, members, text, "ours")
    deliver_order = enrol(settings, 7001, "ada@example.com")  # an existing member: nothing new posts
    assert deliver_order

    taken = batches.undo(settings.database_url, members, outcome.batch_id, "staff:42", "wrong file")

    assert taken == 155
    assert balances(settings) == {7001: 0, 7002: 0}
    reversals = [p for p in import_postings(settings) if p.points < 0]
    assert [p.points for p in reversals] == [-120, -35]
    assert {p.actor for p in reversals} == {"staff:42"}
    assert all("undo of import batch" in p.note and "wrong file" in p.note for p in reversals)
    undone = report(settings, members, outcome.batch_id)
    assert undone["status"] == "undone" and undone["undone"]["by"] == "staff:42"
    assert rows(settings, outcome.batch_id)[4].status == "cancelled"
    enrol(settings, 7003, "cy@example.com")  # the pending shopper arrives after the undo: nothing posts
    assert balances(settings)[7003] == 0
    assert batches.undo(settings.database_url, members, outcome.batch_id, "staff:42", "again") == 0
    with transaction(settings.database_url) as session:
        assert ledger.verify(session) == []


def test_after_an_undo_the_same_file_can_be_imported_again_as_a_new_batch(settings, members):
    first = run(settings, members, SAMPLES["ours"], "ours")
    batches.undo(settings.database_url, members, first.batch_id, "staff", "retry")

    second = run(settings, members, SAMPLES["ours"], "ours")

    assert second.batch_id != first.batch_id and not second.resumed
    assert balances(settings) == {7001: 120, 7002: 35}


def test_a_shopper_not_yet_known_gets_the_opening_balance_at_their_first_order(settings, client, shop):
    outcome = run(settings, shop, "Email,Points Balance\nnew@example.com,80\n", "rivo")
    assert report(settings, shop, outcome.batch_id)["pending"] == 1
    assert balances(settings) == {}

    deliver(client, "orders/paid", builders.order(5, 8123, [builders.line(50, "10.00")], email="new@example.com"))

    assert balances(settings) == {8123: 80 + 10}
    after = report(settings, shop, outcome.batch_id)
    assert (after["matched"], after["pending"], after["points_matched"]) == (1, 0, 80)
    deliver(client, "orders/paid", builders.order(6, 8123, [builders.line(60, "10.00")], email="new@example.com"))
    assert balances(settings) == {8123: 100}  # a second order does not post the opening balance again


def test_a_dry_run_counts_and_values_without_posting_anything(settings, members):
    lines = ["customer_id,email,points"]
    lines += [
        "7001,ada@example.com,120",
        "7002,bob@example.com,35",
        "7009,zed@example.com,900",
        "7010,x@example.com,abc",
    ]
    lines += [f"{8000 + i},p{i}@example.com,{10 + i}" for i in range(12)]
    outcome = run(settings, members, "\n".join(lines) + "\n", "ours", dry_run=True)

    checked = report(settings, members, outcome.batch_id)
    assert (checked["matched"], checked["unmatched"], checked["invalid"]) == (2, 13, 1)
    assert checked["points"] == 120 + 35 + 900 + sum(10 + i for i in range(12))
    assert checked["money_value"] == "12.41"  # 1,241 points at 5.00 per 500 (the default reward)
    assert [r["points"] for r in checked["largest"]] == [900, 120, 35, 21, 20, 19, 18, 17, 16, 15]
    assert errors(settings, members, outcome.batch_id) == [["line", "reason"], ["5", "points 'abc' is not a number"]]
    assert balances(settings) == {7001: 0, 7002: 0} and import_postings(settings) == []
    enrol(settings, 7009, "zed@example.com")  # a dry run's unmatched rows never post
    assert balances(settings)[7009] == 0


def test_each_bad_row_is_reported_with_its_line_and_reason_and_the_rest_import(settings, members):
    text = (
        "customer_id,email,points,favourite colour\n"
        "7001,ada@example.com,120,blue\n"
        "7002,bob@example.com,-5,red\n"
        "7003,cy@example.com,12.5,\n"
        ",,40,\n"
        "7004,not-an-email,40,\n"
        "7001,ada2@example.com,60,\n"
        "7005,eve@example.com,\"=cmd|' /C calc'!A0\",\n"
        '7006,=HYPERLINK("http://evil.test"),10,\n'
        "7007,gil@example.com,10,@SUM(1+1)\n"
        "7008,hal@example.com,1,2,3\n"
    )
    outcome = run(settings, members, text, "ours")

    reported = errors(settings, members, outcome.batch_id)
    assert reported == [
        ["line", "reason"],
        ["3", "points '-5' is negative"],
        ["4", "points '12.5' is not a whole number"],
        ["5", "no customer id and no email"],
        ["6", "email 'not-an-email' is not an email address"],
        ["7", "duplicate shopper: the same customer id is on line 2"],
        ["8", "points looks like a spreadsheet formula; refused"],
        ["9", "email looks like a spreadsheet formula; refused"],
        ["10", "a cell looks like a spreadsheet formula; refused"],
        ["11", "5 cells but the header has 4 columns"],
    ]
    assert balances(settings) == {7001: 120, 7002: 0}
    done = report(settings, members, outcome.batch_id)
    assert done["unknown_columns"] == ["favourite colour"] and done["invalid"] == 9
    stored = " ".join(str(r.error) for r in rows(settings, outcome.batch_id).values())
    assert "cmd|" not in stored and "HYPERLINK" not in stored  # formulas are neither kept nor written back


def test_the_error_file_neutralises_anything_a_spreadsheet_would_run(settings, members):
    from plugin.programme.import_formats import neutralise

    assert neutralise("=cmd|' /C calc'!A0") == "'=cmd|' /C calc'!A0"
    assert neutralise("+1+2") == "'+1+2" and neutralise("@SUM(A1)") == "'@SUM(A1)"
    assert neutralise("-120") == "-120" and neutralise(-120) == -120  # numbers stay numbers
    assert neutralise("Gold") == "Gold"


def test_utf8_with_a_bom_and_latin1_files_are_read_correctly(settings, members):
    bom = "\ufeffcustomer_id,email,points,tier\n7001,ada@example.com,120,Élite\n".encode()
    latin = "customer_id,email,points,tier\n7002,bob@example.com,35,Señor Ünter\n".encode("latin-1")

    with_bom = run(settings, members, bom, "ours")
    latin1 = run(settings, members, latin, "ours")

    assert report(settings, members, with_bom.batch_id)["encoding"] == "utf-8-sig"
    assert rows(settings, with_bom.batch_id)[2].tier == "Élite"
    assert report(settings, members, latin1.batch_id)["encoding"] == "cp1252"
    assert rows(settings, latin1.batch_id)[2].tier == "Señor Ünter"
    assert balances(settings) == {7001: 120, 7002: 35}


def test_a_file_of_another_shops_customers_matches_nobody_here(settings, members):
    with transaction(settings.database_url) as session:
        other = shops.install(session, OTHER_SHOP, None, settings.encryption_keys).id
    enrol(settings, 5001, "ann@elsewhere.example", OTHER_SHOP)
    enrol(settings, 5002, "ben@elsewhere.example", OTHER_SHOP)
    text = "customer_id,email,points\n5001,ann@elsewhere.example,100\n5002,ben@elsewhere.example,200\n"

    outcome = run(settings, members, text, "ours")

    done = report(settings, members, outcome.batch_id)
    assert (done["matched"], done["pending"]) == (0, 2)
    assert balances(settings, OTHER_SHOP) == {5001: 0, 5002: 0}
    assert import_postings(settings) == []
    assert other


def test_a_file_without_a_points_or_shopper_column_is_refused_and_stores_nothing(settings, members):
    with pytest.raises(batches.InvalidFile, match="no points column"):
        run(settings, members, "email,balance\nada@example.com,5\n", "smile")
    with pytest.raises(batches.InvalidFile, match="no shopper column"):
        run(settings, members, "name,points\nAda,5\n", "smile")
    with pytest.raises(batches.ImportRefused, match="source must be one of"):
        run(settings, members, SAMPLES["smile"], "stamped")
    with transaction(settings.database_url) as session:
        assert session.execute(select(func.count(ImportRow.id))).scalar_one() == 0


def test_the_support_history_csv_never_writes_a_formula_back(settings, members):
    from plugin.services import support

    with transaction(settings.database_url) as session:
        shop = shops.get(session, SHOP)
        support.adjust(session, shop, 7001, 5, "goodwill", "=cmd|' /C calc'!A0", "staff:1")
        member = support.find_member(session, shop, customer_id=7001)
        exported = support.history_csv(support.history(session, shop, member))

    cells = [cell for row in csv.reader(io.StringIO(exported)) for cell in row]
    assert "'=cmd|' /C calc'!A0" in cells and not any(cell.startswith("=") for cell in cells)
    assert "5" in cells  # numbers are written as numbers


def test_a_redacted_customer_is_forgotten_on_import_rows_too(settings, members):
    from plugin.services import privacy

    outcome = run(settings, members, SAMPLES["ours"] + "7003,cy@example.com,50,,,1980-01-02,,\n", "ours")
    with transaction(settings.database_url) as session:
        shop = shops.get(session, SHOP)
        privacy.redact_customer(session, shop, 7001)
        privacy.redact_customer(session, shop, 7003)  # still pending: not a member yet

    kept = rows(settings, outcome.batch_id)
    for line in (2, 4):
        assert (kept[line].customer_id, kept[line].email, kept[line].birthday) == (None, None, None)
        assert kept[line].points in (120, 50)  # the amounts stay, as the ledger's do
    assert kept[3].email == "bob@example.com"
    enrol(settings, 7003, "cy@example.com")  # a forgotten pending row can no longer find anyone
    assert balances(settings)[7003] == 0


def test_a_semicolon_separated_file_from_a_european_spreadsheet_is_read(settings, members):
    run(settings, members, "Email;Points Balance\nada@example.com;120\nbob@example.com;35\n", "rivo")

    assert balances(settings) == {7001: 120, 7002: 35}


def test_hostile_cells_are_bad_rows_with_a_reason_never_a_crash(settings, members):
    # Each of these raised out of the row parser (ValueError, decimal.Overflow) or reached PostgreSQL, which
    # refuses NUL in text: the whole import failed with a 500 instead of reporting the line.
    text = (
        "customer_id,email,points,lifetime_spend,tier\n"
        "7001,ada@example.com,120,,\n"
        "²,two@example.com,10,,\n"
        f"{'9' * 5000},big@example.com,10,,\n"
        "7003,cy@example.com,10,1E+999999999999999999,\n"
        "7004,dee@example.com,10,1e-9999999999,\n"
        "7005,e\x00ve@example.com,10,,\n"
        "7006,fay@example.com,10,,Go\x00ld\n"
    )
    outcome = run(settings, members, text, "ours")

    reasons = dict(errors(settings, members, outcome.batch_id)[1:])
    assert sorted(reasons) == ["3", "4", "5", "6", "7", "8"], reasons
    assert "customer id" in reasons["3"] and "customer id" in reasons["4"]
    assert "lifetime spend" in reasons["5"] and "lifetime spend" in reasons["6"]
    assert "control character" in reasons["7"] and "control character" in reasons["8"]
    assert balances(settings) == {7001: 120, 7002: 0}


def test_control_characters_in_a_header_a_file_name_or_an_undo_reason_are_never_a_crash(settings, members):
    text = "customer_id,points,fav\x00colour\n7001,5,x\n"
    outcome = batches.run(
        settings.database_url, members, io.BytesIO(text.encode()), source="ours", filename="a\x00b.csv",
        dry_run=False, actor="test",
    )  # fmt: skip

    assert report(settings, members, outcome.batch_id)["unknown_columns"] == ["fav?colour"]
    with pytest.raises(batches.ImportRefused, match="control characters"):
        batches.undo(settings.database_url, members, outcome.batch_id, "test", "typo\x00")
    assert balances(settings)[7001] == 5


def test_a_member_whose_stored_address_has_capitals_is_matched_by_email(settings, shop):
    enrol(settings, 7001, "Ada@Example.com")  # Shopify keeps the address as the shopper typed it
    run(settings, shop, SAMPLES["smile"], "smile")
    assert balances(settings)[7001] == 120
