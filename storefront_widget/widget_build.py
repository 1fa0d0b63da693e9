"""Minifies the widget's readable sources (widget_src/) into the theme app extension's assets with esbuild."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "widget_src"
ASSETS = HERE / "extension" / "assets"
FILES = ("loyalty-widget.js", "loyalty-widget.css")
# The admin's pinned esbuild (plugin/web/admin_ui/package-lock.json, installed by `make admin`): one copy, one version.
ESBUILD = HERE.parent / "plugin" / "web" / "admin_ui" / "node_modules" / ".bin" / "esbuild"
# What the storefront may pay for the widget: both shipped files gzipped together, level 9 (docs/widget-performance.md).
BUDGET_GZIP_BYTES = 15_000


def build(out: Path = ASSETS) -> None:
    """Writes the shipped files to `out`. Shopify deploys the extension folder as it is, so they are committed."""
    if not ESBUILD.exists():
        raise SystemExit(f"{ESBUILD} is missing: run `make admin`")
    out.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        # ES2019: the syntax the source is written in and the storefronts' browsers run; no legal comments to keep.
        target = ["--target=es2019"] if name.endswith(".js") else []
        subprocess.run(
            [
                str(ESBUILD),
                str(SOURCES / name),
                "--minify",
                "--legal-comments=none",
                *target,
                f"--outfile={out / name}",
            ],
            check=True,
            capture_output=True,
        )


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else ASSETS)
