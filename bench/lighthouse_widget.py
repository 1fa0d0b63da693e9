"""Lighthouse performance of the demo storefront with and without the widget embed; writes docs/widget-performance.md.

Run with `make bench-widget`. Needs Debian's chromium and `npm install` in bench/ (Lighthouse from npm).
Runs alternate with/without so both see the same machine noise; the result is the median of each.
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plugin import ledger  # noqa: E402
from plugin.config import Settings  # noqa: E402
from plugin.db import transaction  # noqa: E402
from plugin.devtools.demo import DEMO_SHOP  # noqa: E402
from plugin.programme.events import Customer  # noqa: E402
from plugin.services import shops  # noqa: E402
from plugin.services.accrual import enrol  # noqa: E402

LIGHTHOUSE = ROOT / "bench" / "node_modules" / "lighthouse" / "cli" / "index.js"
CHROME = "/usr/bin/chromium"
CHROME_FLAGS = "--headless=new --no-sandbox --disable-gpu --disable-background-networking"
RUNS = int(os.environ.get("LIGHTHOUSE_RUNS", "5"))
ASSETS = ROOT / "storefront_widget" / "extension" / "assets"


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="lighthouse-"))
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{workdir}/bench.db",
        "REDIS_URL": "",
        "LOYALTY_DEMO": "1",
        "SHOPIFY_API_SECRET": "bench-secret",
        "LOYALTY_ENCRYPTION_KEYS": "",
        "PYTHONPATH": str(ROOT),
    }
    flask = [sys.executable, "-m", "flask", "--app", "plugin"]
    subprocess.run([*flask, "loyalty", "db-upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
    settings = Settings(database_url=env["DATABASE_URL"])
    with transaction(settings.database_url) as session:
        shop = shops.install(session, DEMO_SHOP, None, ())
        member_id = enrol(session, shop.id, Customer(1001))
        ledger.post(session, shop.id, ledger.Entry(member_id, "bonus", 700, "support", "bench", "bench", "bench"))
    port = 5321
    server = subprocess.Popen(
        [*flask, "run", "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}/demo/storefront?customer=1001"
    try:
        for _ in range(100):
            try:
                requests.get(base, timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        scores: dict[str, list[dict]] = {"without": [], "with": []}
        for run in range(RUNS):
            for variant, embed in (
                (("without", "0"), ("with", "1")) if run % 2 == 0 else (("with", "1"), ("without", "0"))
            ):
                scores[variant].append(lighthouse(f"{base}&embed={embed}", workdir / f"{variant}-{run}.json"))
    finally:
        server.terminate()
        server.wait(timeout=10)
    write_report(scores)


def lighthouse(url: str, out: Path) -> dict:
    subprocess.run(
        [
            "node",
            str(LIGHTHOUSE),
            url,
            "--quiet",
            "--only-categories=performance",
            "--output=json",
            f"--output-path={out}",
            f"--chrome-flags={CHROME_FLAGS}",
        ],
        env={**os.environ, "CHROME_PATH": CHROME},
        check=True,
        timeout=300,
    )
    report = json.loads(out.read_text())
    audits = report["audits"]
    return {
        "score": round(report["categories"]["performance"]["score"] * 100),
        "fcp_ms": round(audits["first-contentful-paint"]["numericValue"]),
        "lcp_ms": round(audits["largest-contentful-paint"]["numericValue"]),
        "tbt_ms": round(audits["total-blocking-time"]["numericValue"]),
        "cls": round(audits["cumulative-layout-shift"]["numericValue"], 4),
        "lighthouse": report["lighthouseVersion"],
        "chrome": report["environment"]["hostUserAgent"],
    }


def write_report(scores: dict[str, list[dict]]) -> None:
    def median(variant: str, key: str):
        return statistics.median(run[key] for run in scores[variant])

    js, css = (ASSETS / "loyalty-widget.js").read_bytes(), (ASSETS / "loyalty-widget.css").read_bytes()
    both_gz = len(gzip.compress(js + css, 9))
    first = scores["with"][0]
    rows = "\n".join(
        f"| {key} | {median('without', key)} | {median('with', key)} "
        f"| {median('with', key) - median('without', key):+g} |"
        for key in ("score", "fcp_ms", "lcp_ms", "tbt_ms", "cls")
    )
    saturation_note = ""
    if median("without", "score") == 100 and median("with", "score") == 100:
        saturation_note = (
            "\nThe demo page is light enough to score 100 either way, so the score cannot show a cost below one point;"
            "\nthe timings can. The first-paint difference comes mostly from the widget's stylesheet, which the embed"
            "\nloads render-blocking; loading it from the deferred script instead is the next improvement to measure.\n"
        )
    runs = "\n".join(
        f"| {n + 1} | {w['score']} | {e['score']} |"
        for n, (w, e) in enumerate(zip(scores["without"], scores["with"], strict=True))
    )
    report = f"""# Storefront widget: what it costs the storefront

Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} ({os.cpu_count()} cores, {platform.platform()}),
Lighthouse {first["lighthouse"]} (npm, run by Node {
        subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    }) in Debian's chromium (`{first["chrome"]}`), default mobile settings with simulated
throttling, performance category only. The page is the demo storefront (`/demo/storefront?customer=1001`, served by
`flask run` on SQLite) with the widget embed (`embed=1`) and without it (`embed=0`); {RUNS} runs of each, alternating,
medians below.

Command: `make bench-widget` (which runs `python bench/lighthouse_widget.py`).

| metric (median) | without widget | with widget | difference |
|---|---|---|---|
{rows}

Goal: the widget costs at most 1 Lighthouse performance point (Shopify's App Store bar is 10).
{saturation_note}
Per run (performance score):

| run | without | with |
|---|---|---|
{runs}

Widget size: `loyalty-widget.js` {len(js):,} bytes and `loyalty-widget.css` {len(css):,} bytes raw;
{both_gz:,} bytes gzipped together (`gzip -9`), against a budget of 15 kB.
"""
    (ROOT / "docs" / "widget-performance.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
