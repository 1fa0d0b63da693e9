"""Fuzzing the App Proxy verifier: clean refusals only, and no accepted query names a shopper it was not signed for."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from plugin.platforms.shopify.adapter import ProxyAuthError, ProxyRequest, proxy_signature, verify_proxy
from tests.conftest import SECRET, SHOP
from tests.fuzzing import fuzz_settings

pytestmark = pytest.mark.fuzz

NOW = 1_790_000_000.0
SHOPIFY_PARAMETERS = {"shop", "logged_in_customer_id", "path_prefix", "timestamp", "signature"}
MAX_CUSTOMER_ID = 2**63 - 1

KEYS = st.one_of(
    st.sampled_from(sorted(SHOPIFY_PARAMETERS - {"signature"})),
    st.sampled_from(["a", "m", "extra", "logged_in_customer_id=", "id", "_", "shop="]),
    st.text(max_size=12),
)
VALUES = st.one_of(
    st.sampled_from([SHOP, "", "1003", "/apps/loyalty", str(int(NOW)), "=", "1003m=Y", "²", "9" * 30]),
    st.text(max_size=16),
)
PAIRS = st.lists(st.tuples(KEYS, VALUES), max_size=7)


def shopify_query(customer: str) -> list[tuple[str, str]]:
    return [
        ("shop", SHOP),
        ("logged_in_customer_id", customer),
        ("path_prefix", "/apps/loyalty"),
        ("timestamp", str(int(NOW))),
    ]


def signed(params: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [*params, ("signature", proxy_signature(params, SECRET))]


def verify(params: list[tuple[str, str]]) -> ProxyRequest | None:
    try:
        return verify_proxy(params, [SECRET], NOW)
    except ProxyAuthError:
        return None


@fuzz_settings(300)
@given(pairs=PAIRS, sign=st.booleans())
def test_the_verifier_accepts_or_refuses_with_a_proxy_auth_error(pairs, sign):
    verify(signed(pairs) if sign else [*pairs, ("signature", "0" * 64)])  # any other exception fails the test


CUSTOMERS = st.one_of(st.just(""), st.integers(1, MAX_CUSTOMER_ID).map(str))


@fuzz_settings(300, shrink=False)
@given(extra=PAIRS, customer=CUSTOMERS)
@example(extra=[("a", "X")], customer="1003")
def test_every_query_the_verifier_accepts_holds_only_shopifys_parameters_without_equals_signs(extra, customer):
    params = signed([*extra, *shopify_query(customer)])
    accepted = verify(params)
    if accepted is None:  # refused: fine. Not assume(): refusals still count, so the example budget stays bounded
        return
    assert all(key in SHOPIFY_PARAMETERS for key, _ in params)
    assert not any("=" in key or "=" in value for key, value in params)
    assert accepted.shop_domain == SHOP


@fuzz_settings(100, shrink=False)
@given(customer=st.integers(0, 10**30).map(str))
@example(customer=str(2**63))
def test_an_accepted_customer_id_fits_bigint(customer):
    accepted = verify(signed(shopify_query(customer)))
    assert accepted is None or accepted.customer_id is None or 0 < accepted.customer_id <= MAX_CUSTOMER_ID


KEY_NAMES = ("a", "m", "x", "logged_in_customer_id", "path_prefix", "shop", "timestamp")


@st.composite
def re_splits(draw) -> tuple[str | None, list[tuple[str, str]]]:
    """Who Shopify signed a query for (None: a visitor), and that signed string split back into pairs anew.

    The attacker chooses extra parameters whose values carry `key=value` text; Shopify appends its own and signs
    the sorted pairs joined with nothing between them. Any other split of that text at a key is a candidate forgery.
    """
    signer = draw(st.one_of(st.just(""), st.integers(1, 10**6).map(str)))
    victim = draw(st.integers(1, 10**6).map(str))
    tokens = st.sampled_from(["X", "Y", f"logged_in_customer_id={victim}", "m=", "x=", "shop=evil.myshopify.com"])
    extra = draw(
        st.lists(st.tuples(st.sampled_from(["a", "m", "x"]), tokens.map(str)), max_size=2, unique_by=lambda p: p[0])
    )
    for position, (key, _) in enumerate(extra):
        extra[position] = (key, "".join(draw(st.lists(tokens, min_size=1, max_size=3))))
    original = signed([*extra, *shopify_query(signer)])
    message = "".join(f"{k}={v}" for k, v in sorted(original) if k != "signature")
    starts = [i for i in range(1, len(message)) if any(message.startswith(f"{name}=", i) for name in KEY_NAMES)]
    cuts = [0, *(i for i in starts if draw(st.booleans())), len(message)]
    pieces: list[str] = []
    for a, b in itertools.pairwise(cuts):
        if "=" in message[a:b] or not pieces:
            pieces.append(message[a:b])
        else:  # a cut inside a key ("path_prefix" holds "x="): no pair starts there
            pieces[-1] += message[a:b]
    forged = [tuple(piece.split("=", 1)) for piece in pieces]
    return (signer or None), [*forged, ("signature", dict(original)["signature"])]


ISSUE_EXAMPLE = (  # issue #12: a visitor's signed query, re-split to carry customer 1003's id
    None,
    [
        ("a", "X"),
        ("logged_in_customer_id", "1003"),
        ("m", "Ylogged_in_customer_id="),
        ("path_prefix", "/apps/loyalty"),
        ("shop", SHOP),
        ("timestamp", str(int(NOW))),
        ("signature", dict(signed([("a", "Xlogged_in_customer_id=1003m=Y"), *shopify_query("")]))["signature"]),
    ],
)


@fuzz_settings(400, shrink=False)
@given(query=re_splits())
@example(query=ISSUE_EXAMPLE)
def test_a_re_split_signed_query_never_names_a_shopper_it_was_not_signed_for(query):
    signer, forged = query
    accepted = verify(forged)
    assert accepted is None or accepted.customer_id == (int(signer) if signer else None)
