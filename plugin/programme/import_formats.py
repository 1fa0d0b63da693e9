"""Column layouts of other loyalty apps' CSV exports, and the pure parsing of one row into an opening balance.

Nothing here touches a database or a file: the import service streams rows in and stores what comes out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

# The fields an import row can carry. `points` and one shopper key (customer_id or email) are required.
FIELDS = ("customer_id", "email", "points", "lifetime_points", "lifetime_spend", "birthday", "tier", "expires_on")
MAX_POINTS = 10**12  # far above any real balance; a bigger number is a broken cell, not a balance
# Characters that make a spreadsheet treat a cell as a formula (OWASP's CSV injection list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
EMAIL = re.compile(r"^[^@\s,;<>\"']+@[^@\s,;<>\"']+\.[^@\s,;<>\"']+$")
NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")
# NUL and the other control characters: PostgreSQL text refuses NUL, and none belongs in a name, email or tier.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Currencies whose minor unit is not 1/100 (ISO 4217); every other currency has two decimals.
CURRENCY_EXPONENTS = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV"), 0),
    **dict.fromkeys(("XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}


@dataclass(frozen=True)
class Layout:
    """One source app's export: which header spellings mean which field, and how it writes birthdays."""

    key: str
    title: str  # shown in members' history: "imported from LoyaltyLion, 2026-12-02"
    columns: dict[str, tuple[str, ...]]  # field -> accepted headers (compared case- and space-insensitively)
    ignored: tuple[str, ...] = ()  # documented columns we read past on purpose (names, referral links...)
    birthday_us_order: bool = False  # MM/DD[/YYYY] rather than DD/MM[/YYYY] when slashes are used


OURS = Layout(
    "ours",
    "our export",
    {name: (name,) for name in FIELDS},
    ignored=("first_name", "last_name", "balance_after", "member_since"),
)
LAYOUTS: dict[str, Layout] = {
    layout.key: layout
    for layout in (
        # help.smile.io "Import points with a CSV file": the two documented headers are `email` and `points`.
        Layout(
            "smile",
            "Smile.io",
            {
                "customer_id": ("customer id", "shopify customer id", "external id"),
                "email": ("email", "customer email"),
                "points": ("points", "points balance"),
                "lifetime_points": ("points earned", "lifetime points"),
                "birthday": ("date of birth", "birthday"),
                "tier": ("vip tier", "tier"),
            },
            ignored=("first name", "last name", "name", "referral url", "state", "created at", "updated at"),
        ),
        # help.loyaltylion.com: customer ID, email, points, enrolled; exports carry points approved, pending,
        # spent and lifetime (How points work). Only approved points can be spent, so only those are imported.
        Layout(
            "loyaltylion",
            "LoyaltyLion",
            {
                "customer_id": ("customer id", "merchant id", "shopify id"),
                "email": ("email", "emails"),
                "points": ("points approved", "points", "approved points"),
                "lifetime_points": ("points lifetime", "lifetime points"),
                "lifetime_spend": ("total revenue", "revenue"),
                "birthday": ("birthday", "date of birth"),
                "tier": ("tier", "current tier"),
            },
            ignored=(
                "name",
                "first name",
                "last name",
                "points pending",
                "points spent",
                "points total",
                "enrolled",
                "status",
                "enrollment date",
                "total orders",
            ),
        ),
        # support.yotpo.com "Importing/Exporting Points and Customers": Email (required), Points Balance,
        # Points Spent, Birthday (MM/DD) or (MM/DD/YYYY); the export adds the current balance and referral link.
        Layout(
            "yotpo",
            "Yotpo",
            {
                "email": ("email", "email address"),
                "points": ("points balance", "current points balance", "points"),
                "lifetime_points": ("total points earned", "points earned"),
                "lifetime_spend": ("total spent", "total purchases"),
                "birthday": ("birthday", "birthday (mm/dd) or (mm/dd/yyyy)", "birthday (mm/dd)"),
                "tier": ("vip tier", "tier"),
            },
            ignored=("full name", "first name", "last name", "points spent", "referral link", "anniversary", "opt in"),
            birthday_us_order=True,
        ),
        # help.rivo.io "Using CSV files": Email,Points Balance,Birthdate,VIP Tier,Activation Date,Credits Balance;
        # its points-log importer also names customer_id / Customer ID / Shopify Customer ID.
        Layout(
            "rivo",
            "Rivo",
            {
                "customer_id": ("customer id", "customer_id", "customerid", "shopify customer id"),
                "email": ("email", "customer email", "customer_email", "shopify customer email"),
                "points": ("points balance", "points"),
                "lifetime_points": ("lifetime points", "points earned"),
                "birthday": ("birthdate", "birthday"),
                "tier": ("vip tier", "tier"),
                "expires_on": ("expires at", "expires_at", "points expiry"),
            },
            ignored=("activation date", "credits balance", "first name", "last name"),
        ),
        OURS,
    )
}


class HeaderError(ValueError):
    """The file cannot be read with this layout at all (no points column, no shopper column)."""


@dataclass(frozen=True)
class Header:
    fields: dict[int, str]  # column index -> field
    unknown: tuple[str, ...]  # columns we do not know, read past (reported on line 1)
    width: int


@dataclass(frozen=True)
class Opening:
    """One shopper's opening state as the old app exported it."""

    customer_id: int | None
    email: str | None
    points: int
    lifetime_points: int | None = None
    lifetime_spend_minor: int | None = None
    birthday: str | None = None  # YYYY-MM-DD, or --MM-DD when the year is unknown (ISO 8601)
    tier: str | None = None
    expires_on: date | None = None

    @property
    def shopper_key(self) -> str:
        """What makes two rows the same shopper: the customer id when given, else the email."""
        return f"c:{self.customer_id}" if self.customer_id is not None else f"e:{self.email}"


class RowError(ValueError):
    """This row cannot be imported; the message says why, for the error file."""


def _normal(header: str) -> str:
    return " ".join(header.replace("\ufeff", "").strip().lower().replace("_", " ").split())


def read_header(cells: list[str], layout: Layout) -> Header:
    wanted = {_normal(spelling): name for name, spellings in layout.columns.items() for spelling in spellings}
    ignored = {_normal(name) for name in layout.ignored}
    fields: dict[int, str] = {}
    unknown = []
    for index, cell in enumerate(cells):
        name = wanted.get(_normal(cell))
        if name is not None and name not in fields.values():
            fields[index] = name
        elif _normal(cell) not in ignored:
            unknown.append(CONTROL.sub("?", cell.strip()))  # only reported back: shown, never refused
    present = set(fields.values())
    if "points" not in present:
        accepted = ", ".join(repr(s) for s in layout.columns["points"])
        raise HeaderError(f"no points column for {layout.title}: expected one of {accepted}")
    if not present & {"customer_id", "email"}:
        raise HeaderError(f"no shopper column for {layout.title}: a customer id or an email column is required")
    return Header(fields=fields, unknown=tuple(unknown), width=len(cells))


def parse_row(cells: list[str], header: Header, layout: Layout, currency: str | None) -> Opening:
    """One data row as an Opening, or RowError with the reason. Formula-like cells are refused, never kept."""
    if len(cells) > header.width and any(c.strip() for c in cells[header.width :]):
        raise RowError(f"{len(cells)} cells but the header has {header.width} columns")
    values: dict[str, str] = {}
    for index, name in header.fields.items():
        raw = cells[index].strip() if index < len(cells) else ""
        if raw and looks_like_formula(raw):
            raise RowError(f"{name} looks like a spreadsheet formula; refused")
        if CONTROL.search(raw):
            raise RowError(f"{name} contains a control character; refused")
        values[name] = raw
    for index, raw in enumerate(cells):
        if index not in header.fields and raw.strip() and looks_like_formula(raw.strip()):
            raise RowError("a cell looks like a spreadsheet formula; refused")
    customer_id = _customer_id(values.get("customer_id", ""))
    email = _email(values.get("email", ""))
    if customer_id is None and email is None:
        raise RowError("no customer id and no email")
    return Opening(
        customer_id=customer_id,
        email=email,
        points=_points(values.get("points", ""), "points", required=True),
        lifetime_points=_points(values.get("lifetime_points", ""), "lifetime points"),
        lifetime_spend_minor=_money_minor(values.get("lifetime_spend", ""), currency),
        birthday=_birthday(values.get("birthday", ""), layout.birthday_us_order),
        tier=values.get("tier") or None,
        expires_on=_date(values.get("expires_on", ""), "expiry date"),
    )


def looks_like_formula(text: str) -> bool:
    return text.startswith(FORMULA_STARTS) and not NUMBER.match(text)


def neutralise(value: object) -> object:
    """A cell safe to write into a CSV a merchant opens in a spreadsheet: formulas become plain text."""
    if isinstance(value, str) and value and looks_like_formula(value):
        return "'" + value
    return value


def _customer_id(raw: str) -> int | None:
    if not raw:
        return None
    text = raw.rsplit("/", 1)[-1]  # gid://shopify/Customer/123 as some exports write it
    # ASCII digits only ("²" passes isdigit() but not int()), and at most 19 of them (int() refuses 4,300).
    if not (text.isascii() and text.isdigit() and len(text) <= 19) or int(text) <= 0 or int(text) >= 2**63:
        raise RowError(f"customer id {raw[:40]!r} is not a Shopify customer id")
    return int(text)


def _email(raw: str) -> str | None:
    if not raw:
        return None
    if len(raw) > 320 or not EMAIL.match(raw):
        raise RowError(f"email {raw[:60]!r} is not an email address")
    return raw.lower()


def _points(raw: str, what: str, required: bool = False) -> int | None:
    if not raw:
        if required:
            raise RowError(f"{what} missing")
        return None
    text = raw.replace(" ", "")
    if re.fullmatch(r"\d{1,3}(,\d{3})+", text):  # 1,234 as spreadsheets format thousands
        text = text.replace(",", "")
    if not NUMBER.match(text):
        raise RowError(f"{what} {raw[:40]!r} is not a number")
    number = Decimal(text)
    if number < 0:
        raise RowError(f"{what} {raw[:40]!r} is negative")
    if number != number.to_integral_value():
        raise RowError(f"{what} {raw[:40]!r} is not a whole number")
    if number > MAX_POINTS:
        raise RowError(f"{what} {raw[:40]!r} is implausibly large")
    return int(number)


def currency_exponent(currency: str | None) -> int:
    return CURRENCY_EXPONENTS.get((currency or "").upper(), 2)


def _money_minor(raw: str, currency: str | None) -> int | None:
    if not raw:
        return None
    text = raw.replace(" ", "").lstrip("$€£¥")
    if re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", text):
        text = text.replace(",", "")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise RowError(f"lifetime spend {raw[:40]!r} is not an amount") from None
    if not amount.is_finite() or amount < 0:
        raise RowError(f"lifetime spend {raw[:40]!r} is not an amount")
    if not -30 <= amount.as_tuple().exponent <= 30 or amount.adjusted() > 18:
        # Before any arithmetic: scaling 1E+999999999 overflows the decimal context, 1e-9999999999 rounds to 0.
        raise RowError(f"lifetime spend {raw[:40]!r} is implausibly large or precise")
    exponent = currency_exponent(currency)
    minor = amount.scaleb(exponent)
    if minor != minor.to_integral_value():
        raise RowError(f"lifetime spend {raw[:40]!r} has more than {exponent} decimals")
    if minor >= 2**63:
        raise RowError(f"lifetime spend {raw[:40]!r} is implausibly large")
    return int(minor)


def _date(raw: str, what: str) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw[:10])
    except ValueError:
        raise RowError(f"{what} {raw[:40]!r} is not a date (YYYY-MM-DD)") from None


def _birthday(raw: str, us_order: bool) -> str | None:
    """YYYY-MM-DD, or --MM-DD without a year. Slashed dates follow the layout's documented order."""
    if not raw:
        return None
    iso = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", raw)
    short = re.fullmatch(r"-{0,2}(\d{1,2})-(\d{1,2})", raw)
    slashed = re.fullmatch(r"(\d{1,2})/(\d{1,2})(?:/(\d{4}))?", raw)
    year: int | None = None
    if iso:
        year, month, day = int(iso[1]), int(iso[2]), int(iso[3])
    elif short:
        month, day = int(short[1]), int(short[2])
    elif slashed:
        first, second = int(slashed[1]), int(slashed[2])
        month, day = (first, second) if us_order else (second, first)
        year = int(slashed[3]) if slashed[3] else None
    else:
        raise RowError(f"birthday {raw[:40]!r} is not a date")
    try:
        date(year or 2000, month, day)  # 2000 was a leap year: 29 February is a birthday
    except ValueError:
        raise RowError(f"birthday {raw[:40]!r} is not a date") from None
    return f"{year:04d}-{month:02d}-{day:02d}" if year else f"--{month:02d}-{day:02d}"


def value_per_point(rewards: list) -> Decimal | None:
    """What one point is worth in money: the best fixed-amount reward's amount per point (None without one)."""
    rates = [r.amount / r.points for r in rewards if r.kind == "fixed_amount" and r.amount and r.points]
    return max(rates) if rates else None
