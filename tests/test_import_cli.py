"""`loyalty import ...`: a dry run, the import with progress, the error file, undo, from the command line."""

from __future__ import annotations

import json

from tests.conftest import SHOP
from tests.test_import import SAMPLES, balances, enrol


def run(app, *args: str):
    return app.test_cli_runner().invoke(args=["loyalty", "import", *args])


def test_dry_run_then_import_then_undo_from_the_command_line(app, settings, shop, tmp_path):
    enrol(settings, 7001, "ada@example.com")
    export = tmp_path / "loyaltylion.csv"
    export.write_text(SAMPLES["loyaltylion"] + "7003,cy@example.com,lots,,,,\n")

    checked = run(app, "run", SHOP, str(export), "--source", "loyaltylion", "--dry-run")
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.stdout)
    assert (report["matched"], report["unmatched"], report["invalid"], report["points"]) == (1, 1, 1, 155)
    assert "line 4 of 4 (100%)" in checked.stderr
    assert balances(settings) == {7001: 0}

    imported = run(app, "run", SHOP, str(export), "--source", "loyaltylion", "--actor", "ops:kim")
    assert imported.exit_code == 0, imported.output
    batch = json.loads(imported.stdout)["id"]
    assert balances(settings) == {7001: 120}
    assert f"loyalty import match {SHOP} {batch}" in imported.stderr  # Bob is not a member yet

    errors = run(app, "errors", SHOP, str(batch))
    assert errors.stdout.splitlines() == ["line,reason", "4,points 'lots' is not a number"]
    listed = json.loads(run(app, "list", SHOP).stdout)
    assert [(b["id"], b["dry_run"]) for b in listed] == [(batch, False), (report["id"], True)]

    undone = run(app, "undo", SHOP, str(batch), "--reason", "wrong export")
    assert undone.exit_code == 0 and json.loads(undone.stdout)["points_taken_back"] == 120
    assert balances(settings) == {7001: 0}


def test_command_line_errors_are_clear(app, shop, tmp_path):
    export = tmp_path / "bad.csv"
    export.write_text("name,points\nAda,5\n")

    refused = run(app, "run", SHOP, str(export), "--source", "smile")
    assert refused.exit_code == 1 and "no shopper column" in refused.output
    assert "no import batch 99" in run(app, "show", SHOP, "99").output
    assert run(app, "undo", SHOP, "99", "--reason", "x").exit_code == 1
    assert "Invalid value for '--source'" in run(app, "run", SHOP, str(export), "--source", "stamped").output
