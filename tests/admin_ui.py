"""Helpers for the admin's browser tests: session tokens, the built bundle, a seeded member, axe."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from pathlib import Path

import jwt

from plugin import ledger
from plugin.db import transaction
from plugin.programme.events import Customer
from plugin.services.accrual import enrol
from tests.conftest import ROOT, SECRET, SHOP
from tests.processes import start_app

API_KEY = "test-api-key"
ADMIN_UI = ROOT / "plugin" / "web" / "admin_ui"
BUNDLE = ROOT / "plugin" / "static" / "admin-ui"
AXE = ADMIN_UI / "node_modules" / "axe-core" / "axe.min.js"
PAGES = [
    "", "programme", "tiers", "milestones", "members", "members/1001", "activity", "referrals", "reports", "settings",
    "import", "support-keys", "parked",
]  # fmt: skip


def session_token(secret: str = SECRET, shop: str = SHOP) -> str:
    """A session token as App Bridge would mint it for a member of shop's staff."""
    now = int(time.time())
    claims = {
        "iss": f"https://{shop}/admin",
        "dest": f"https://{shop}",
        "aud": API_KEY,
        "sub": "42",
        "exp": now + 300,
        "nbf": now - 5,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def sources_digest(root: Path = ADMIN_UI) -> str:
    """The digest build.mjs writes to stamp.json: every file under src/, the lockfile and build.mjs, in order."""
    digest = hashlib.sha256()

    def walk(folder: Path) -> list[Path]:
        return [p for child in sorted(folder.iterdir()) for p in (walk(child) if child.is_dir() else [child])]

    for path in [*walk(root / "src"), root / "package-lock.json", root / "build.mjs"]:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def require_current_bundle() -> None:
    """Fail with the fix when the admin was never built, or was built from other sources than these."""
    stamp = BUNDLE / "stamp.json"
    assert stamp.exists(), "the admin is not built: run `make admin`"
    assert json.loads(stamp.read_text())["sources_sha256"] == sources_digest(), "the admin is stale: run `make admin`"


def seed_member(settings, shop_id: int) -> None:
    """Customer 1001 with 1500 points granted and 300 spent."""
    with transaction(settings.database_url) as session:
        member_id = enrol(session, shop_id, Customer(1001, "shopper1001@example.com"))
        ledger.post(session, shop_id, ledger.Entry(member_id, "bonus", 1500, "support", "seed", "seed", "manual"))
        ledger.post(session, shop_id, ledger.Entry(member_id, "redeem", -300, "redemption", "r1", "r1", "manual"))


def serve(settings):
    """The app under `flask run` with the bundle checked first; returns (process, base URL)."""
    require_current_bundle()
    return start_app(settings, SHOPIFY_API_KEY=API_KEY, REDIS_URL="")


def admin_url(base_url: str, path: str = "", **query: str) -> str:
    params = "&".join(f"{k}={v}" for k, v in {"shop": SHOP, "id_token": session_token(), **query}.items())
    return f"{base_url}/admin{'/' + path if path else ''}?{params}"


def axe_violations(page) -> list[dict]:
    """axe-core's serious and critical violations on the page, once its transitions have finished."""
    # A toast sliding in is half transparent: its contrast is only meaningful once it has arrived.
    page.wait_for_function("document.getAnimations().every(animation => animation.playState !== 'running')")
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
        for v in found
        if v["impact"] in ("serious", "critical")
    ]
