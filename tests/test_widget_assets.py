"""The widget's shipped files: the minified build of its readable sources, within the storefront's gzip budget."""

from __future__ import annotations

import gzip

from storefront_widget.widget_build import ASSETS, BUDGET_GZIP_BYTES, ESBUILD, FILES, build


def test_the_shipped_widget_stays_within_its_gzip_budget():
    shipped = b"".join((ASSETS / name).read_bytes() for name in FILES)  # script then stylesheet, as the bench measures
    assert len(gzip.compress(shipped, 9)) <= BUDGET_GZIP_BYTES


def test_the_shipped_widget_is_the_build_of_its_sources(tmp_path):
    assert ESBUILD.exists(), "esbuild is not installed: run `make admin`"
    build(tmp_path)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (ASSETS / name).read_bytes(), f"{name} is stale: run `make widget`"
