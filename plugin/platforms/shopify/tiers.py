"""Shopify customer tiers: the tier as a customer tag (tagsAdd / tagsRemove) and the `loyalty.tier` metafield.

One call per customer: a GraphQL document holding only the mutations that customer needs, so the tag removal,
the tag addition and the metafield land together or the call fails and the member stays due.
"""

from __future__ import annotations

from plugin.platforms.base import TierChange
from plugin.platforms.shopify.admin import AdminAPIError, AdminClient

REMOVE = "tagsRemove(id: $id, tags: $remove) { userErrors { field message } }"
ADD = "tagsAdd(id: $id, tags: $add) { userErrors { field message } }"
SET = "metafieldsSet(metafields: $metafields) { metafields { id } userErrors { field message code } }"
DELETE = "metafieldsDelete(metafields: $identifiers) { deletedMetafields { key } userErrors { field message } }"


def tier_document(change: TierChange) -> tuple[str, dict]:
    """The mutation for one customer's change and its variables (operation name LoyaltyTier)."""
    owner = f"gid://shopify/Customer/{change.customer_id}"
    parameters = ["$id: ID!"]
    fields = []
    variables: dict = {"id": owner}
    if change.remove_tags:
        parameters.append("$remove: [String!]!")
        fields.append(REMOVE)
        variables["remove"] = list(change.remove_tags)
    if change.add_tags:
        parameters.append("$add: [String!]!")
        fields.append(ADD)
        variables["add"] = list(change.add_tags)
    identifier = {"ownerId": owner, "namespace": "loyalty", "key": "tier"}
    if change.tier_name:
        parameters.append("$metafields: [MetafieldsSetInput!]!")
        fields.append(SET)
        variables["metafields"] = [{**identifier, "type": "single_line_text_field", "value": change.tier_name}]
    else:
        parameters.append("$identifiers: [MetafieldIdentifierInput!]!")
        fields.append(DELETE)
        variables["identifiers"] = [identifier]
    document = f"mutation LoyaltyTier({', '.join(parameters)}) {{\n  " + "\n  ".join(fields) + "\n}"
    return document, variables


def push_tier(client: AdminClient, change: TierChange) -> None:
    """Write one customer's tier; raises AdminAPIError when the shop refuses any part."""
    document, variables = tier_document(change)
    data = client.graphql(document, variables)
    refused = {
        name: (data.get(name) or {}).get("userErrors")
        for name in ("tagsRemove", "tagsAdd", "metafieldsSet", "metafieldsDelete")
        if (data.get(name) or {}).get("userErrors")
    }
    if refused:
        raise AdminAPIError(f"tier push refused: {refused}")
