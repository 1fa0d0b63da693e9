"""Explanations in the shop's language: structured details (a template key and its parameters) rendered at read time.

Rules and the ledger store what happened as data (`{"key": "base", "amount": "37.42", ...}`), never as prose, so
one posting reads in English to one shop and in French to another, and a catalogue fix reaches old postings.
Money and factors are kept as plain decimal strings and formatted per locale here; a merchant's own names
(campaigns, rules, tags, collections) are shown as typed. Older postings carry only English text (key `text`),
which renders as it was written.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

DEFAULT_LOCALE = "en"

# Decimal mark and thousands separator per catalogue language (CLDR's, for the language's main region).
NUMBER_SYMBOLS = {
    "en": (".", ","),
    "fr": (",", "\u202f"),
}

# One table per language. Every language has every key (a test checks it); `{name}` fields are filled from the
# parameters below, after numbers are formatted.
CATALOGUE: dict[str, dict[str, str]] = {
    "en": {
        "lot": "{points} points: {parts} (rules v{version})",
        "base": "{amount} eligible \u00d7 {rate}",
        "rate": "{points} per {per_amount}",
        "segment_rate": "{points} per {per_amount} ({tag} rate)",
        "multiplier": "\u00d7 {factor} {label}",
        "campaign_multiplier": "\u00d7 {factor} {name} campaign",
        "tier_multiplier": "\u00d7 {factor} {name} tier",
        "on_amount": "{text} on {amount}",
        "campaign_bonus": "+{points} {name} campaign",
        "fixed_points": "+{points} {name}",
        "per_order": "+{points} per order",
        "cap": "capped at {points} per order",
        "under_minimum": "subtotal {subtotal} is under the minimum {minimum}",
        "nothing_eligible": "nothing eligible",
        "match_tag": "tag {value}",
        "match_collection": "collection {value}",
        "match_products": "{count} products",
        "match_variants": "{count} variants",
        "match_everything": "every line",
        "order_earned": "{order}: {lot}",
        "order_earned_rate": "{order}: {points} pt per {per_amount} on eligible lines",
        "order_cancelled": "{order} cancelled",
        "order_refunded": "{order} refunded",
        "tier_corrected": "{order}: tier corrected: {name} from {since}",
        "tier_corrected_none": "{order}: tier corrected: no tier when paid",
        "order_claw_back": "{order}: claw_back of {points} points spent before a reversal",
        "order": "order {id}",
        "birthday_bonus": "Birthday bonus {year}",
        "tier_birthday_reward": "{name} tier birthday reward {year}",
    },
    "fr": {
        "lot": "{points} points : {parts} (r\u00e8gles v{version})",
        "base": "{amount} \u00e9ligibles \u00d7 {rate}",
        "rate": "{points} pour {per_amount}",
        "segment_rate": "{points} pour {per_amount} (taux {tag})",
        "multiplier": "\u00d7 {factor} {label}",
        "campaign_multiplier": "\u00d7 {factor} campagne {name}",
        "tier_multiplier": "\u00d7 {factor} niveau {name}",
        "on_amount": "{text} sur {amount}",
        "campaign_bonus": "+{points} campagne {name}",
        "fixed_points": "+{points} {name}",
        "per_order": "+{points} par commande",
        "cap": "plafonn\u00e9 \u00e0 {points} par commande",
        "under_minimum": "sous-total {subtotal} inf\u00e9rieur au minimum {minimum}",
        "nothing_eligible": "rien d\u2019\u00e9ligible",
        "match_tag": "\u00e9tiquette {value}",
        "match_collection": "collection {value}",
        "match_products": "{count} produits",
        "match_variants": "{count} variantes",
        "match_everything": "toutes les lignes",
        "order_earned": "{order} : {lot}",
        "order_earned_rate": "{order} : {points} pt pour {per_amount} sur les lignes \u00e9ligibles",
        "order_cancelled": "{order} annul\u00e9e",
        "order_refunded": "{order} rembours\u00e9e",
        "tier_corrected": "{order} : niveau corrig\u00e9 : {name} depuis le {since}",
        "tier_corrected_none": "{order} : niveau corrig\u00e9 : aucun niveau au paiement",
        "order_claw_back": "{order} : reprise de {points} points d\u00e9pens\u00e9s avant une annulation",
        "order": "commande {id}",
        "birthday_bonus": "Bonus d\u2019anniversaire {year}",
        "tier_birthday_reward": "Cadeau d\u2019anniversaire du niveau {name} {year}",
    },
}
LOCALES = tuple(sorted(CATALOGUE))

# Parameters that are numbers (formatted per locale); every other parameter is shown as given.
NUMBER_PARAMS = frozenset({"amount", "per_amount", "factor", "subtotal", "minimum", "points", "count"})


@lru_cache(maxsize=64)
def language(locale: str | None) -> str:
    """The catalogue language for a shop locale ("fr-CA" -> "fr"); English when the catalogue lacks it."""
    code = (locale or DEFAULT_LOCALE).replace("_", "-").split("-", 1)[0].casefold()
    return code if code in CATALOGUE else DEFAULT_LOCALE


def number(value: Any, locale: str | None = DEFAULT_LOCALE) -> str:
    """A whole or decimal number written the locale's way ("1234.50" -> "1,234.50" or "1 234,50").

    Keeps the digits it is given (no rounding, no float): money stays as exact as it was stored.
    """
    return _number(str(value), language(locale))


# Remembered by the text and the language (not the value: Decimal("1.0") == Decimal("1.00") == 1 as keys): an
# order's explanation writes about ten numbers, most of them the same few rates, factors and points.
@lru_cache(maxsize=4096)
def _number(text: str, lang: str) -> str:
    try:
        exact = Decimal(text)
    except InvalidOperation:
        return text  # not a number after all: shown as given rather than guessed at
    if not exact.is_finite():
        return text
    if "e" in text.casefold():
        text = f"{exact:f}"  # "1E+1" -> "10"
    mark, group = NUMBER_SYMBOLS[lang]
    sign = "-" if text.startswith("-") else ""
    whole, _, fraction = text.lstrip("+-").partition(".")
    if len(whole) >= 4:
        whole = f"{int(whole):,}".replace(",", group)
    return sign + whole + (mark + fraction if fraction else "")


def render(details: dict[str, Any] | None, locale: str | None = DEFAULT_LOCALE) -> str | None:
    """The text of structured details in the shop's language (None for no details)."""
    if details is None:
        return None
    return _render(details, language(locale))


def _render(details: dict[str, Any], lang: str) -> str:
    key = details.get("key")
    if key == "text":
        return str(details.get("text", ""))  # written before explanations were structured: English as stored
    table = CATALOGUE[lang]
    if key not in table:
        return str(details.get("text") or key)  # a key from a newer release: its fallback text, never an error
    params = _Missing()
    for name, value in details.items():
        if type(value) is str:  # most parameters (_param's first case, inline: an explanation has a dozen)
            params[name] = _number(value, lang) if name in NUMBER_PARAMS else value
        elif name != "key":
            params[name] = _param(name, value, lang)
    params.pop("key", None)
    text = table[key].format_map(params)
    if details.get("on") is not None:
        text = table["on_amount"].format(text=text, amount=_number(str(details["on"]), lang))
    return text


def _param(name: str, value: Any, lang: str) -> str:
    if type(value) is str:  # most parameters: neither details nor a list, so straight to the number or the text
        return _number(value, lang) if name in NUMBER_PARAMS else value
    if isinstance(value, dict) and "key" in value:
        return _render(value, lang)
    if isinstance(value, list):
        return ", ".join(_param(name, item, lang) for item in value)
    if name in NUMBER_PARAMS:
        return _number(str(value), lang)
    return str(value)


class _Missing(dict):
    """format_map's mapping: a parameter a template names but the details lack shows empty, never raises."""

    def __missing__(self, key: str) -> str:
        return ""


# Builders: what the rules and the ledger store. Keeping them here keeps every key in one file.


def detail(key: str, **params: Any) -> dict[str, Any]:
    """Structured details: a catalogue key and its JSON-safe parameters (None values left out)."""
    return {"key": key, **{name: value for name, value in params.items() if value is not None}}


def plain(text: str) -> dict[str, Any]:
    """Details for text that has no template (older postings, support's own notes)."""
    return {"key": "text", "text": text}


def localized(note: str | None, details: dict[str, Any] | None, locale: str | None) -> str | None:
    """A posting's explanation in the shop's language: its details rendered, or its stored note when it has none.

    A note longer than its details' English (a remark the ledger added, such as a negative balance) keeps that
    remark after the translated text, so nothing the note says is lost.
    """
    if not details:
        return note
    text = render(details, locale) or ""
    english = render(details, DEFAULT_LOCALE) or ""
    if note and note != english and note.startswith(english):
        text += note[len(english) :]
    return text
