"""A rule naming a collection is checked at save against the cache and, for the rest, the shop's Admin API."""

from __future__ import annotations

import json
import re

import responses

from tests.conftest import SHOP
from tests.test_admin_api import call, session_token

GRAPHQL = re.compile(r"https://loyal-shop\.myshopify\.com/admin/api/[^/]+/graphql\.json")


def by_collections(*names) -> dict:
    return {"rules": [{"type": "multiplier", "multiplier": "2", "match": {"collections": list(names)}}]}


def answer(request):
    body = json.loads(request.body)
    if "nodes" in body["query"]:  # ids: the shop has collection 411 only
        nodes = [{"id": gid, "handle": "coats"} if gid.endswith("/411") else None for gid in body["variables"]["ids"]]
        return 200, {}, json.dumps({"data": {"nodes": nodes}})
    found = {key: ({"id": "gid://shopify/Collection/412"} if value == "boots" else None)
             for key, value in body["variables"].items()}  # fmt: skip
    return 200, {}, json.dumps({"data": {key.replace("h", "c"): value for key, value in found.items()}})


@responses.activate
def test_a_collection_the_shop_has_is_accepted_before_any_cached_product_is_in_it(client, shop_with_token):
    responses.add_callback(responses.POST, GRAPHQL, callback=answer)
    token = session_token()
    saved = call(client, "PUT", "rules", token, json=by_collections("411", "boots"))
    assert saved.status_code == 200, saved.get_json()
    assert saved.get_json()["rules"][0]["match"]["collections"] == ["411", "boots"]
    preview = call(client, "POST", "rules/preview", token, json={"rules": by_collections("boots"), "days": 30})
    assert preview.status_code == 200


@responses.activate
def test_a_collection_the_shop_does_not_have_is_refused_per_field_and_nothing_is_saved(client, shop_with_token):
    responses.add_callback(responses.POST, GRAPHQL, callback=answer)
    token = session_token()
    refused = call(client, "PUT", "rules", token, json=by_collections("411", "999", "nowhere"))
    assert refused.status_code == 422
    message = refused.get_json()["error"]["fields"]["rules"]["0"]["match"]["collections"][0]
    assert message == "unknown collection(s): 999, nowhere"
    assert call(client, "GET", "rules", token).get_json()["version"] == 0
    previewed = call(client, "POST", "rules/preview", token, json={"rules": by_collections("nowhere")})
    assert previewed.status_code == 422


def test_the_cli_refuses_an_unknown_collection_with_its_field(app, shop):
    result = app.test_cli_runner().invoke(args=["loyalty", "rules", "save", SHOP, json.dumps(by_collections("x"))])
    assert result.exit_code != 0 and "unknown collection" in result.output  # no token: checked against the cache
