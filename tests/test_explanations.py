"""Explanations in the shop's language: the catalogue, number formatting per locale, and older plain-text notes."""

from __future__ import annotations

import pytest

from plugin.programme import explanations
from plugin.programme.explanations import CATALOGUE, detail, localized, number, plain, render
from tests.rules_helpers import line, lot, snapshot

BLACK_FRIDAY = {
    "type": "campaign", "name": "Black Friday", "multiplier": "2",
    "starts_at": "2026-11-27T00:00:00", "ends_at": "2026-11-28T00:00:00",
}  # fmt: skip
NEW_YORK = {"time_zone": "America/New_York"}


def test_every_language_has_every_template_of_the_english_catalogue():
    assert set(explanations.NUMBER_SYMBOLS) == set(CATALOGUE)
    for language, table in CATALOGUE.items():
        assert set(table) == set(CATALOGUE["en"]), language


def test_the_issues_example_reads_in_english_and_in_french_from_the_same_stored_details():
    built = lot(snapshot(line(1, "37.42")), BLACK_FRIDAY, **NEW_YORK)
    assert render(built.details, "en") == (
        "74 points: 37.42 eligible \u00d7 1 per 1.00, \u00d7 2 Black Friday campaign (rules v5)"
    )
    assert render(built.details, "fr") == (
        "74 points : 37,42 \u00e9ligibles \u00d7 1 pour 1,00, \u00d7 2 campagne Black Friday (r\u00e8gles v5)"
    )
    assert render(built.details, "fr-CA") == render(built.details, "fr")  # a region reads in its language


@pytest.mark.parametrize(
    ("value", "locale", "shown"),
    [
        ("1234.50", "en", "1,234.50"),
        ("1234.50", "fr", "1\u202f234,50"),
        ("1234567", "en", "1,234,567"),
        ("999.5", "fr", "999,5"),
        ("-1234.5", "fr", "-1\u202f234,5"),
        ("0.10", "en", "0.10"),  # the digits as stored: never rounded, never a float
        ("1E+1", "en", "10"),
        ("12", "xx", "12"),  # an unknown language reads in English
    ],
)
def test_numbers_are_written_the_locales_way_and_keep_their_digits(value, locale, shown):
    assert number(value, locale) == shown


def test_an_unknown_locale_reads_in_english_and_a_regional_one_in_its_language():
    assert explanations.language("de-AT") == "en"
    assert explanations.language("fr_BE") == "fr"
    assert explanations.language(None) == "en"


def test_a_posting_written_before_explanations_were_structured_reads_as_it_was_written():
    old = "#1: 10 points: 10.00 eligible \u00d7 1 per 1.00 (rules v1)"
    assert localized(old, None, "fr") == old
    assert render(plain(old), "fr") == old


def test_a_remark_the_ledger_added_to_a_note_is_kept_after_the_translated_text():
    details = detail("order_refunded", order="#7")
    note = "#7 refunded; balance is negative (-5): points taken back had already been spent"
    assert localized(note, details, "fr") == (
        "#7 rembours\u00e9e; balance is negative (-5): points taken back had already been spent"
    )
    assert localized("#7 refunded", details, "fr") == "#7 rembours\u00e9e"


def test_match_descriptions_segment_rates_caps_and_minimums_are_translated():
    multiplier = {"type": "multiplier", "multiplier": "1.5", "match": {"tags": ["winter"], "product_ids": [1, 2]}}
    cap = {"type": "points_cap", "max_points": 1000}
    built = lot(snapshot(line(1, "2000.00", product=1), line(2, "10.00")), multiplier, cap)
    assert render(built.details, "en") == (
        "1,000 points: 2,010.00 eligible \u00d7 1 per 1.00, \u00d7 1.5 tag winter, 2 products on 2,000.00, "
        "capped at 1,000 per order (rules v5)"
    )
    assert render(built.details, "fr") == (
        "1\u202f000 points : 2\u202f010,00 \u00e9ligibles \u00d7 1 pour 1,00, \u00d7 1,5 \u00e9tiquette winter, "
        "2 produits sur 2\u202f000,00, plafonn\u00e9 \u00e0 1\u202f000 par commande (r\u00e8gles v5)"
    )
    minimum = {"type": "base_rate", "points": 1, "per_amount": "1", "min_subtotal": "50"}
    assert render(lot(snapshot(line(1, "20.00")), minimum).details, "fr") == (
        "0 points : sous-total 20,00 inf\u00e9rieur au minimum 50 (r\u00e8gles v5)"
    )


def test_a_template_key_from_a_newer_release_shows_its_fallback_text_instead_of_failing():
    assert render({"key": "from_the_future", "text": "something new"}, "fr") == "something new"
