"""Setup lifecycle against real API and ingest processes (contract "Secrets, keys and setup
lifecycle"): webhook-secret and API-key rotation, key revocation (refused by the API at once and by
ingest within 5 s), campaign PATCH, link deactivation, and the audit log (who, when, before and
after; never a key or secret). A second API process whose ClickHouse is down shows that a change it
cannot audit answers 503 and changes nothing."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from liveledger.setup_state import SetupReplica, SetupState
from tests.api.conftest import World, make_world
from tests.api.test_read_api import assert_error
from tests.harness import AppStack, free_port

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.clickhouse]

REVOCATION_DEADLINE_S = 5.0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from make_world(Path(tmp_path_factory.mktemp("lifecycle")), start=("api", "ingest"))


ISSUED: list[str] = []  # every key and secret this module saw: none may appear in the audit log


def remember(body: dict[str, Any]) -> dict[str, Any]:
    ISSUED.extend(v for k, v in body.items() if k in ("api_key", "webhook_secret"))
    return body


def call(world: World, method: str, path: str, key: str | None, body: Any = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.request(method, world.stack.api_url + path, json=body, headers=headers, timeout=30)


def ok(resp: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    data: dict[str, Any] = resp.json()
    return remember(data)


def stored(world: World) -> SetupState:
    """The setup records as any process's replica reads them from the topic."""

    async def read() -> SetupState:
        replica = SetupReplica(world.stack.settings)
        await replica.start()
        await replica.stop()
        return replica.state

    return asyncio.run(read())


def ingest_events(world: World, key: str, stream_id: str) -> int:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    event = {"event_id": f"e-{time.monotonic_ns()}", "type": "view", "stream_id": stream_id, "viewer_id": "v1",
             "action": "join", "occurred_at": now}
    resp = httpx.post(world.stack.ingest_url + "/v1/events", json={"events": [event]},
                      headers={"Authorization": f"Bearer {key}"}, timeout=10)
    return resp.status_code


def assert_ingest_refuses_within_deadline(world: World, key: str, stream_id: str, started: float) -> float:
    """Poll ingest until it answers 401 to ``key``; fail if that takes 5 s or more from ``started``."""
    while True:
        status = ingest_events(world, key, stream_id)
        elapsed = time.monotonic() - started
        if status == 401:
            assert elapsed < REVOCATION_DEADLINE_S, elapsed
            return elapsed
        assert elapsed < REVOCATION_DEADLINE_S, f"ingest still answers {status} after {elapsed:.1f}s"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def brand(world: World) -> dict[str, Any]:
    """A brand of its own (its keys get rotated), with a creator, a stream, a campaign and a link."""
    b = remember(world.setup.brand("rb1"))
    c = remember(world.setup.creator("rc1"))
    world.setup.stream("rs1", "rb1", "rc1")
    world.setup.campaign("rcmp1", "rb1", rate_bps=1000)
    link = world.setup.link("rc1", "rcmp1", coupon_code="spring10")
    ISSUED.extend(world.keys.values())
    return {"key": b["api_key"], "secret": b["webhook_secret"], "creator_key": c["api_key"], "link": link["link_code"]}


# --- webhook secret ------------------------------------------------------------------------------

def test_webhook_secret_rotation_keeps_the_previous_secret_for_24h(world: World, brand: dict[str, Any]) -> None:
    assert_error(call(world, "POST", "/v1/admin/brands/rb1/webhook-secret", world.keys["b2"]), 403)
    assert_error(call(world, "POST", "/v1/admin/brands/rb1/webhook-secret", brand["creator_key"]), 403)
    assert_error(call(world, "POST", "/v1/admin/brands/nope/webhook-secret", world.keys["admin"]), 404)
    assert_error(call(world, "POST", "/v1/admin/brands/rb1/webhook-secret", None), 401)
    before = datetime.now(UTC)
    first = ok(call(world, "POST", "/v1/admin/brands/rb1/webhook-secret", brand["key"]))["webhook_secret"]
    assert first.startswith("whsec_") and first != brand["secret"]
    row = stored(world).brands["rb1"]
    assert row["webhook_secret"] == first and row["previous_webhook_secret"] == brand["secret"]
    expires = row["previous_secret_expires_at"]
    assert before + timedelta(hours=24) - timedelta(seconds=1) <= expires <= datetime.now(UTC) + timedelta(hours=24)
    # a second rotation keeps only the most recent previous secret
    second = ok(call(world, "POST", "/v1/admin/brands/rb1/webhook-secret", world.keys["admin"]))["webhook_secret"]
    row = stored(world).brands["rb1"]
    assert (row["webhook_secret"], row["previous_webhook_secret"]) == (second, first)


# --- API keys ------------------------------------------------------------------------------------

def test_brand_key_rotation_refuses_the_old_key_at_once_and_on_ingest_within_5s(
        world: World, brand: dict[str, Any]) -> None:
    old = brand["key"]
    assert ingest_events(world, old, "rs1") == 202  # the old key works on ingest before the rotation
    assert_error(call(world, "POST", "/v1/admin/brands/rb1/api-key", world.keys["b2"]), 403)
    assert_error(call(world, "POST", "/v1/admin/brands/nope/api-key", world.keys["admin"]), 404)
    new = ok(call(world, "POST", "/v1/admin/brands/rb1/api-key", old))["api_key"]
    started = time.monotonic()
    assert new.startswith("llb_") and new != old
    assert_error(call(world, "GET", "/v1/streams/rs1/live", old), 401)  # the API: at once
    assert call(world, "GET", "/v1/streams/rs1/live", new).status_code == 200
    assert_ingest_refuses_within_deadline(world, old, "rs1", started)
    assert ingest_events(world, new, "rs1") == 202
    brand["key"] = new
    state = stored(world)
    assert [state.keys[d].brand_id for d in state.key_digests("brand", "rb1")] == ["rb1"]
    assert hashlib.sha256(old.encode()).hexdigest() not in state.keys


def test_creator_key_rotation(world: World, brand: dict[str, Any]) -> None:
    old = brand["creator_key"]
    assert ingest_events(world, old, "rs1") == 403  # known key, but not a brand key
    assert_error(call(world, "POST", "/v1/admin/creators/rc1/api-key", world.keys["c1"]), 403)
    assert_error(call(world, "POST", "/v1/admin/creators/rc1/api-key", brand["key"]), 403)
    assert_error(call(world, "POST", "/v1/admin/creators/nope/api-key", world.keys["admin"]), 404)
    new = ok(call(world, "POST", "/v1/admin/creators/rc1/api-key", old))["api_key"]
    started = time.monotonic()
    assert_error(call(world, "GET", "/v1/creators/rc1/earnings", old), 401)
    assert call(world, "GET", "/v1/creators/rc1/earnings", new).status_code == 200
    assert_ingest_refuses_within_deadline(world, old, "rs1", started)
    # admin rotates it too
    newer = ok(call(world, "POST", "/v1/admin/creators/rc1/api-key", world.keys["admin"]))["api_key"]
    assert_error(call(world, "GET", "/v1/creators/rc1/earnings", new), 401)
    brand["creator_key"] = newer


def test_revoke_any_key(world: World, brand: dict[str, Any]) -> None:
    fin = ok(call(world, "POST", "/v1/admin/finance-keys", world.keys["admin"], {"name": "auditors"}), 201)
    assert call(world, "GET", "/v1/finance/payouts", fin["api_key"]).status_code == 200
    assert_error(call(world, "POST", "/v1/admin/keys/revoke", brand["key"], {"api_key": fin["api_key"]}), 403)
    revoked = ok(call(world, "POST", "/v1/admin/keys/revoke", world.keys["admin"], {"api_key": fin["api_key"]}))
    assert revoked["revoked"] is True and revoked["key_id"].startswith("key-")
    assert_error(call(world, "GET", "/v1/finance/payouts", fin["api_key"]), 401)
    assert_error(call(world, "POST", "/v1/admin/keys/revoke", world.keys["admin"], {"api_key": fin["api_key"]}), 404)
    assert_error(call(world, "POST", "/v1/admin/keys/revoke", world.keys["admin"], {"api_key": "llb_never"}), 404)
    assert_error(call(world, "POST", "/v1/admin/keys/revoke", world.keys["admin"],
                      {"api_key": world.keys["admin"]}), 422)
    assert_error(call(world, "POST", "/v1/admin/keys/revoke", world.keys["admin"], {"key": "x"}), 422)
    # a brand key revoked: ingest refuses it within 5 s
    key = brand["key"]
    assert ingest_events(world, key, "rs1") == 202
    ok(call(world, "POST", "/v1/admin/keys/revoke", world.keys["admin"], {"api_key": key}))
    started = time.monotonic()
    assert_error(call(world, "GET", "/v1/streams/rs1/live", key), 401)
    assert_ingest_refuses_within_deadline(world, key, "rs1", started)
    assert stored(world).key_digests("brand", "rb1") == []
    brand["key"] = ok(call(world, "POST", "/v1/admin/brands/rb1/api-key", world.keys["admin"]))["api_key"]


# --- campaigns and links -------------------------------------------------------------------------

def test_patch_campaign(world: World, brand: dict[str, Any]) -> None:
    path = "/v1/campaigns/rcmp1"
    assert_error(call(world, "PATCH", path, world.keys["b2"], {"rate_bps": 1}), 403)
    assert_error(call(world, "PATCH", path, brand["creator_key"], {"rate_bps": 1}), 403)
    assert_error(call(world, "PATCH", "/v1/campaigns/nope", world.keys["admin"], {"rate_bps": 1}), 404)
    for bad in ({}, {"rate_bps": 10_001}, {"rate_bps": None}, {"hold_days": "3"}, {"flat_minor": -1},
                {"ends_at": "tomorrow"}, {"ends_at": "0001-01-01T00:00:00Z"}, {"ends_at": "9999-12-31T23:00:00-01:00"},
                {"active": 0},
                {"campaign_id": "x"}, {"brand_id": "b2"}, {"attribution_window_days": 3}):
        assert_error(call(world, "PATCH", path, brand["key"], bad), 422, "validation_failed")
    got = ok(call(world, "PATCH", path, brand["key"], {"rate_bps": 250, "flat_minor": 10, "hold_days": 7,
                                                        "min_payout_minor": 100}))
    assert (got["rate_bps"], got["flat_minor"], got["hold_days"], got["min_payout_minor"]) == (250, 10, 7, 100)
    assert got["active"] is True and got["ends_at"] is None and got["attribution_window_days"] == 30
    ends = "2031-01-01T00:00:00.000Z"
    got = ok(call(world, "PATCH", path, world.keys["admin"], {"ends_at": "2031-01-01T01:00:00+01:00",
                                                               "active": False}))
    assert got["ends_at"] == ends and got["active"] is False and got["paused_at"] is not None
    row = stored(world).campaigns["rcmp1"]
    assert row["rate_bps"] == 250 and row["active"] is False
    assert row["ends_at"] == datetime(2031, 1, 1, tzinfo=UTC) and row["paused_at"] is not None
    paused_at = got["paused_at"]
    got = ok(call(world, "PATCH", path, brand["key"], {"active": True, "ends_at": None}))
    assert got["active"] is True and got["paused_at"] is None and got["ends_at"] is None
    assert [p["paused_at"] for p in got["pauses"]] == [paused_at] and got["pauses"][0]["resumed_at"] >= paused_at
    assert stored(world).campaigns["rcmp1"]["pauses"][0]["paused_at"].isoformat()[:19] == paused_at[:19]


def test_delete_link_deactivates_it(world: World, brand: dict[str, Any]) -> None:
    code = brand["link"]
    assert_error(call(world, "DELETE", f"/v1/links/{code}", world.keys["b2"]), 403)
    assert_error(call(world, "DELETE", f"/v1/links/{code}", brand["creator_key"]), 403)
    assert_error(call(world, "DELETE", "/v1/links/nope", world.keys["admin"]), 404)
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    got = ok(call(world, "DELETE", f"/v1/links/{code}", brand["key"]))
    assert got["link_code"] == code and got["coupon_code"] == "SPRING10" and got["deactivated_at"]
    row = stored(world).links[code]
    assert before <= row["deactivated_at"] <= datetime.now(UTC)
    again = ok(call(world, "DELETE", f"/v1/links/{code}", world.keys["admin"]))
    assert again == got  # idempotent: the first deactivation time stays


# --- audit log -----------------------------------------------------------------------------------

def test_audit_log_records_every_change_without_secrets(world: World, brand: dict[str, Any]) -> None:
    assert_error(call(world, "GET", "/v1/admin/audit", brand["key"]), 403)
    assert_error(call(world, "GET", "/v1/admin/audit", world.keys["finance"]), 403)
    for bad in ("yesterday", "0001-01-01T00:00:00+01:00", "9999-12-31T00:00:00Z"):
        assert_error(call(world, "GET", f"/v1/admin/audit?since={bad}", world.keys["admin"]), 422)
    resp = call(world, "GET", "/v1/admin/audit", world.keys["admin"])
    entries = ok(resp)["entries"]
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
    assert all(set(e) == {"at", "actor", "action", "entity", "entity_id", "before", "after"} for e in entries)
    seen = {(e["action"], e["entity"], e["entity_id"]) for e in entries}
    for change in (("create", "brand", "rb1"), ("create", "creator", "rc1"), ("create", "stream", "rs1"),
                   ("create", "campaign", "rcmp1"), ("create", "link", brand["link"]),
                   ("rotate_webhook_secret", "brand", "rb1"), ("update_campaign", "campaign", "rcmp1"),
                   ("deactivate_link", "link", brand["link"])):
        assert change in seen, change
    def first(action: str, entity_id: str) -> dict[str, Any]:
        return next(e for e in entries if e["action"] == action and e["entity_id"] == entity_id)

    rotated = first("rotate_webhook_secret", "rb1")  # by the brand's own key, then by admin
    assert rotated["actor"].startswith("brand:rb1/key-") and rotated["before"]["brand_id"] == "rb1"
    assert first("create", "rb1")["actor"] == "admin" and first("create", "rb1")["before"] is None
    assert "webhook_secret" not in rotated["after"] and rotated["after"]["previous_secret_expires_at"]
    assert rotated["before"]["previous_secret_expires_at"] is None
    deactivated = first("deactivate_link", brand["link"])
    assert deactivated["before"]["deactivated_at"] is None and deactivated["after"]["deactivated_at"]
    patches = [e for e in entries if e["action"] == "update_campaign"]
    assert patches[0]["before"]["rate_bps"] == 1000 and patches[0]["after"]["rate_bps"] == 250
    assert {p["actor"] for p in patches} >= {"admin"}
    keys = [e for e in entries if e["entity"] == "apikey"]
    assert {e["action"] for e in keys} >= {"create", "rotate_api_key", "revoke_api_key"}
    rotation = [e for e in keys if e["action"] == "rotate_api_key" and (e["after"] or {}).get("brand_id") == "rb1"]
    assert rotation and all(e["entity_id"].startswith("key-") for e in keys)
    revoked = [e for e in keys if e["action"] == "revoke_api_key"]
    assert revoked and all(e["after"] is None and e["before"]["role"] for e in revoked)
    # no key or secret, nor any digest of one, anywhere in the answer
    text = resp.text
    assert ISSUED and len(ISSUED) >= 8
    for secret in ISSUED:
        digest = hashlib.sha256(secret.encode()).hexdigest()
        assert secret not in text and digest[:12] not in text
    assert "whsec_" not in text and "llb_" not in text and "llc_" not in text and "llf_" not in text
    # since: only what came after
    last = entries[-1]["at"]
    later = ok(call(world, "GET", f"/v1/admin/audit?since={last}", world.keys["admin"]))["entries"]
    assert later and all(e["at"] >= last for e in later) and len(later) < len(entries)
    assert ok(call(world, "GET", "/v1/admin/audit?limit=2", world.keys["admin"]))["entries"] == entries[:2]


def test_without_clickhouse_a_change_is_refused_and_nothing_changes(world: World, brand: dict[str, Any],
                                                                    tmp_path: Path) -> None:
    """An API process whose ClickHouse is down cannot audit, so it changes nothing (503)."""
    down = AppStack(log_dir=tmp_path, prefix=world.prefix,
                    extra_env={"LIVELEDGER_CLICKHOUSE_DATABASE": world.database,
                               "CLICKHOUSE_URL": f"http://127.0.0.1:{free_port()}"})
    try:
        down.start_api()
        before = stored(world)
        audit_before = ok(call(world, "GET", "/v1/admin/audit", world.keys["admin"]))["entries"]

        def via_down(method: str, path: str, body: Any = None) -> httpx.Response:
            return httpx.request(method, down.api_url + path, json=body, timeout=30,
                                 headers={"Authorization": f"Bearer {world.keys['admin']}"})

        assert_error(via_down("PATCH", "/v1/campaigns/rcmp1", {"rate_bps": 9}), 503, "audit_unavailable")
        assert_error(via_down("POST", "/v1/admin/brands/rb1/api-key"), 503, "audit_unavailable")
        assert_error(via_down("POST", "/v1/admin/brands", {"brand_id": "rb-down", "name": "D", "currency": "USD"}),
                     503, "audit_unavailable")
        assert_error(via_down("DELETE", "/v1/links/nope"), 404)  # checks still answer before any write
        after = stored(world)
        assert after.campaigns["rcmp1"] == before.campaigns["rcmp1"] and "rb-down" not in after.brands
        assert after.keys == before.keys
        assert call(world, "GET", "/v1/streams/rs1/live", brand["key"]).status_code == 200
        assert ok(call(world, "GET", "/v1/admin/audit", world.keys["admin"]))["entries"] == audit_before
    finally:
        down.stop_all()
