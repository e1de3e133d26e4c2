"""qbo-api.md §1 and §6.1: paths, headers, envelopes, minorversion, gateway faults."""

from __future__ import annotations

import re
import uuid

import httpx

from .conftest import Api, customer_body

STAMP_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2}$")
STAMP_S = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")


def test_create_envelope_headers_and_metadata(api: Api) -> None:
    resp = api.post("/customer", customer_body("King's Groceries"), params={"minorversion": "75"})
    assert resp.status_code == 200
    uuid.UUID(resp.headers["intuit_tid"])
    assert resp.headers["content-type"].startswith("application/json")
    data = resp.json()
    assert STAMP_MS.match(data["time"])
    cust = data["Customer"]
    assert cust["domain"] == "QBO" and cust["sparse"] is False
    assert cust["SyncToken"] == "0" and isinstance(cust["Id"], str)
    assert STAMP_S.match(cust["MetaData"]["CreateTime"])
    assert cust["MetaData"]["CreateTime"] == cust["MetaData"]["LastUpdatedTime"]


def test_every_response_has_intuit_tid_even_errors(api: Api) -> None:
    bad = api.get("/customer/999999")
    assert bad.status_code == 400 and bad.headers["intuit_tid"]
    anon = httpx.get(f"{api.server.url}/v3/company/{api.realm_id}/customer/1")
    assert anon.status_code == 401 and anon.headers["intuit_tid"]


def test_minorversion_missing_low_and_high_are_accepted(api: Api) -> None:
    for value in (None, "4", "75", "80"):
        params = {"minorversion": value} if value else {}
        resp = api.http.get(f"/companyinfo/{api.realm_id}", params=params)
        assert resp.status_code == 200, resp.text


def test_minorversion_not_an_integer_is_a_validation_fault(api: Api) -> None:
    resp = api.http.get(f"/companyinfo/{api.realm_id}", params={"minorversion": "abc"})
    err = api.fault(resp)
    assert resp.json()["Fault"]["type"] == "ValidationFault"
    assert err["code"] == "2010"


def test_missing_token_gets_gateway_lowercase_401(api: Api) -> None:
    resp = httpx.get(f"{api.server.url}/v3/company/{api.realm_id}/customer/1")
    assert resp.status_code == 401
    body = resp.json()
    assert body["fault"]["type"] == "AUTHENTICATION"
    assert body["fault"]["error"][0]["code"] == "3200"
    assert "statusCode=401" in body["fault"]["error"][0]["message"]
    assert isinstance(body["time"], int) and body["batchItemResponse"] == []


def test_unknown_token_is_401_and_short_token_is_malformed(api: Api) -> None:
    url = f"{api.server.url}/v3/company/{api.realm_id}/customer/1"
    resp = httpx.get(url, headers={"Authorization": "Bearer " + "x" * 40})
    assert resp.status_code == 401
    resp = httpx.get(url, headers={"Authorization": "Bearer abc"})
    assert resp.status_code == 401
    assert "Malformed bearer token" in resp.json()["fault"]["error"][0]["detail"]


def test_token_of_another_realm_is_403(api: Api, sandbox) -> None:
    other = sandbox.create_realm()
    resp = httpx.get(
        f"{sandbox.url}/v3/company/{other}/companyinfo/{other}",
        headers={"Authorization": f"Bearer {api.token}"},
    )
    assert resp.status_code == 403
    assert resp.json()["fault"]["error"][0]["code"] == "3100"


def test_unknown_entity_path_is_unsupported_operation(api: Api) -> None:
    err = api.fault(api.post("/frobnicator", {"Name": "x"}))
    assert err["code"] == "500"
    assert err["Message"] == "Unsupported Operation"


def test_companyinfo_read_by_realm_id_and_preferences(api: Api) -> None:
    info = api.read("CompanyInfo", api.realm_id)
    assert info["CompanyName"] and info["Country"] == "US"
    prefs = api.get("/preferences").json()["Preferences"]
    assert prefs["CurrencyPrefs"]["HomeCurrency"]["value"] == "USD"


def test_companyinfo_sparse_update(api: Api) -> None:
    info = api.read("CompanyInfo", api.realm_id)
    resp = api.post(
        "/companyinfo",
        {"Id": info["Id"], "SyncToken": info["SyncToken"], "sparse": True, "LegalName": "Acme LLC"},
    )
    assert resp.status_code == 200, resp.text
    updated = resp.json()["CompanyInfo"]
    assert updated["LegalName"] == "Acme LLC" and updated["CompanyName"] == info["CompanyName"]
    assert updated["SyncToken"] == str(int(info["SyncToken"]) + 1)


def test_malformed_json_is_a_validation_fault(api: Api) -> None:
    resp = api.http.post("/customer", content=b"{not json", headers={"Content-Type": "application/json"})
    assert api.fault(resp)["code"] == "2010"
