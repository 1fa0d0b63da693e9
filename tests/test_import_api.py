"""The admin's imports API: upload a CSV export, dry run first, import, error file, undo, all under session tokens."""

from __future__ import annotations

import io

import pytest
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from tests.conftest import SHOP
from tests.test_admin_api import session_token
from tests.test_import import SAMPLES, balances, enrol

RIVO = SAMPLES["rivo"] + "cy@example.com,oops,,,,\n"


def upload(client, data: bytes | str, token: str | None = "valid", **form):
    token = session_token() if token == "valid" else token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    fields = {
        "source": "rivo",
        **form,
        "file": FileStorage(io.BytesIO(data if isinstance(data, bytes) else data.encode()), "rivo.csv"),
    }
    # Encoded here rather than by the test client, whose spooled body of a large upload is never closed.
    boundary, body = encode_multipart(fields)
    return client.post(
        "/api/admin/imports", data=body, headers=headers, content_type=f"multipart/form-data; boundary={boundary}"
    )


def staff(client, method: str, path: str, json=None):
    headers = {"Authorization": f"Bearer {session_token()}"}
    return client.open(f"/api/admin/imports{path}", method=method, headers=headers, json=json)


@pytest.fixture
def members(settings, shop):
    enrol(settings, 7001, "ada@example.com")
    enrol(settings, 7002, "bob@example.com")
    return shop


def test_an_upload_is_a_dry_run_by_default_then_imports_and_undoes(client, settings, members):
    checked = upload(client, RIVO)
    assert checked.status_code == 201, checked.get_json()
    report = checked.get_json()
    assert (report["dry_run"], report["matched"], report["unmatched"], report["invalid"]) == (True, 2, 0, 1)
    assert report["largest"][0]["points"] == 120 and report["by"] == "staff:42"
    assert balances(settings) == {7001: 0, 7002: 0}

    errors = staff(client, "GET", f"/{report['id']}/errors")
    assert errors.status_code == 200 and errors.mimetype == "text/csv"
    assert errors.get_data(as_text=True).splitlines() == ["line,reason", "4,points 'oops' is not a number"]

    imported = upload(client, RIVO, dry_run="false")
    assert imported.status_code == 201 and imported.get_json()["status"] == "done"
    assert balances(settings) == {7001: 120, 7002: 35}
    again = upload(client, RIVO, dry_run="false")
    assert again.status_code == 200 and again.get_json()["resumed"] is True
    assert balances(settings) == {7001: 120, 7002: 35}

    batch = imported.get_json()["id"]
    assert staff(client, "GET", f"/{batch}").get_json()["progress"] == {"line": 4, "lines": 4}
    assert [b["id"] for b in staff(client, "GET", "").get_json()["imports"]] == [batch, report["id"]]
    undone = staff(client, "POST", f"/{batch}/undo", json={"reason": "imported the wrong file"})
    assert undone.status_code == 200 and undone.get_json()["points_taken_back"] == 155
    assert undone.get_json()["undone"]["by"] == "staff:42"
    assert balances(settings) == {7001: 0, 7002: 0}


def test_bad_requests_get_clear_json_errors(client, settings, members):
    no_token = upload(client, RIVO, token=None)
    assert no_token.status_code == 401 and no_token.get_json()["error"]["code"] == "invalid_session_token"
    other_shop = upload(client, RIVO, token=session_token(shop="stranger.myshopify.com"))
    assert other_shop.status_code == 401

    unknown_source = upload(client, RIVO, source="stamped")
    assert unknown_source.status_code == 422
    assert set(unknown_source.get_json()["error"]["fields"]) == {"source"}
    no_points = upload(client, "Email,Name\nada@example.com,Ada\n")
    assert no_points.status_code == 422 and no_points.get_json()["error"]["code"] == "invalid_file"
    no_file = client.post(
        "/api/admin/imports",
        data={"source": "rivo"},
        headers={"Authorization": f"Bearer {session_token()}"},
        content_type="multipart/form-data",
    )
    assert no_file.status_code == 422 and "file" in no_file.get_json()["error"]["fields"]

    assert staff(client, "GET", "/999").status_code == 404
    assert staff(client, "GET", "/999/errors").status_code == 404
    dry = upload(client, RIVO).get_json()["id"]
    refused = staff(client, "POST", f"/{dry}/undo", json={"reason": "x"})
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "import_conflict"
    no_reason = staff(client, "POST", f"/{dry}/undo", json={})
    assert no_reason.status_code == 422 and "reason" in no_reason.get_json()["error"]["fields"]


def test_another_shops_batch_is_not_found(client, settings, members):
    from plugin.db import transaction
    from plugin.services import shops

    batch = upload(client, RIVO).get_json()["id"]
    with transaction(settings.database_url) as session:
        shops.install(session, "stranger.myshopify.com", None, settings.encryption_keys)
    headers = {"Authorization": f"Bearer {session_token(shop='stranger.myshopify.com')}"}

    assert client.get(f"/api/admin/imports/{batch}", headers=headers).status_code == 404
    assert client.post(f"/api/admin/imports/{batch}/undo", headers=headers, json={"reason": "x"}).status_code == 404
    assert client.get("/api/admin/imports", headers=headers).get_json() == {"imports": []}
    assert SHOP != "stranger.myshopify.com"


def test_a_file_larger_than_the_webhook_limit_is_accepted(client, settings, members):
    lines = ["Email,Points Balance"] + [f"s{i}@example.com,{i}" for i in range(60_000)]
    big = ("\n".join(lines) + "\n").encode()
    assert len(big) > 1024 * 1024

    response = upload(client, big)

    assert response.status_code == 201 and response.get_json()["rows"] == 60_000
