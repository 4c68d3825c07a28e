from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from liveledger.domain.live import (
    LiveEvent,
    PresenceUpdate,
    aggregate_batch,
    ctr,
    cvr,
    expire_presence,
    merge_presence,
    parse_utc,
    peak_viewers,
    presence_wins,
    ratio,
    top_products,
    viewers_now,
)

T0 = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)


def view(viewer: str, action: str, sec: float, stream: str = "s1", eid: str | None = None) -> LiveEvent:
    return LiveEvent(
        eid or f"v-{viewer}-{action}-{sec}",
        "view",
        stream,
        viewer,
        T0 + timedelta(seconds=sec),
        action,  # type: ignore[arg-type]
    )


def click(viewer: str | None, product: str | None, sec: float = 0, stream: str | None = "s1") -> LiveEvent:
    return LiveEvent(f"c-{viewer}-{product}-{sec}", "click", stream, viewer, T0 + timedelta(seconds=sec), None, product)


def cart(viewer: str, product: str, sec: float = 0, stream: str = "s1") -> LiveEvent:
    return LiveEvent(
        f"a-{viewer}-{product}-{sec}", "add_to_cart", stream, viewer, T0 + timedelta(seconds=sec), None, product
    )


def test_counts_per_stream() -> None:
    batch = [
        view("v1", "join", 0),
        view("v2", "join", 1),
        view("v1", "heartbeat", 20),
        view("v3", "join", 2, stream="s2"),
        click("v1", "p1", 5),
        click("v2", "p1", 6),
        click("v2", "p2", 7),
        cart("v2", "p1", 8),
        click("v3", "p9", 9, stream="s2"),
    ]
    out = aggregate_batch(batch)
    assert list(out) == ["s1", "s2"]
    s1 = out["s1"]
    assert (s1.views, s1.clicks, s1.add_to_carts) == (2, 3, 1)
    assert s1.product_clicks == {"p1": 2, "p2": 1}
    assert s1.product_carts == {"p1": 1}
    assert s1.viewer_ids == frozenset({"v1", "v2"})
    assert s1.first_at == T0 and s1.last_at == T0 + timedelta(seconds=20)
    assert s1.presence == {
        "v1": PresenceUpdate(T0 + timedelta(seconds=20), True),
        "v2": PresenceUpdate(T0 + timedelta(seconds=1), True),
    }
    assert out["s2"].views == 1 and out["s2"].product_clicks == {"p9": 1}


def test_heartbeats_and_leaves_are_not_views() -> None:
    out = aggregate_batch([view("v1", "heartbeat", 0), view("v1", "leave", 1)])
    assert out["s1"].views == 0
    assert out["s1"].viewer_ids == frozenset({"v1"})


def test_redirect_click_without_stream_is_skipped() -> None:
    assert aggregate_batch([click(None, "p1", stream=None)]) == {}
    out = aggregate_batch([click(None, None)])
    assert out["s1"].clicks == 1 and out["s1"].product_clicks == {} and out["s1"].viewer_ids == frozenset()


def test_out_of_order_events_within_batch() -> None:
    events = [view("v1", "join", 0), view("v1", "heartbeat", 30), view("v1", "leave", 40)]
    for perm in (events, events[::-1], [events[1], events[2], events[0]]):
        out = aggregate_batch(perm)
        assert out["s1"].presence["v1"] == PresenceUpdate(T0 + timedelta(seconds=40), False)
        assert viewers_now(out["s1"].presence, T0 + timedelta(seconds=41)) == 0


def test_leave_then_rejoin() -> None:
    out = aggregate_batch([view("v1", "leave", 10), view("v1", "join", 20), view("v1", "join", 0)])
    assert out["s1"].presence["v1"] == PresenceUpdate(T0 + timedelta(seconds=20), True)
    assert out["s1"].views == 2


def test_tie_leave_wins() -> None:
    for order in ([("join", 5), ("leave", 5)], [("leave", 5), ("join", 5)]):
        out = aggregate_batch([view("v1", a, s) for a, s in order])
        assert out["s1"].presence["v1"].present is False


def test_viewers_now_60s_expiry_inclusive() -> None:
    presence = aggregate_batch([view("v1", "join", 0), view("v2", "join", 30)])["s1"].presence
    assert viewers_now(presence, T0 + timedelta(seconds=60)) == 2  # exactly 60 s ago: still counted
    assert viewers_now(presence, T0 + timedelta(seconds=60, milliseconds=1)) == 1
    assert viewers_now(presence, T0 + timedelta(seconds=91)) == 0


def test_late_older_event_does_not_resurrect_across_batches() -> None:
    stored = merge_presence({}, aggregate_batch([view("v1", "leave", 50)])["s1"].presence)
    late = aggregate_batch([view("v1", "heartbeat", 45)])["s1"].presence
    stored = merge_presence(stored, late)
    assert stored["v1"] == PresenceUpdate(T0 + timedelta(seconds=50), False)
    assert viewers_now(stored, T0 + timedelta(seconds=55)) == 0
    newer = aggregate_batch([view("v1", "heartbeat", 70)])["s1"].presence
    stored = merge_presence(stored, newer)
    assert viewers_now(stored, T0 + timedelta(seconds=75)) == 1


def test_clicks_do_not_refresh_presence() -> None:
    out = aggregate_batch([view("v1", "join", 0), click("v1", "p1", 100)])
    assert viewers_now(out["s1"].presence, T0 + timedelta(seconds=100)) == 0


def test_presence_wins_rules() -> None:
    a = PresenceUpdate(T0, True)
    assert presence_wins(a, None)
    assert presence_wins(PresenceUpdate(T0 + timedelta(microseconds=1), True), a)
    assert not presence_wins(PresenceUpdate(T0 - timedelta(microseconds=1), False), a)
    assert presence_wins(PresenceUpdate(T0, False), a)
    assert not presence_wins(PresenceUpdate(T0, True), PresenceUpdate(T0, False))
    assert not presence_wins(a, a)


def test_expire_and_peak() -> None:
    presence = {
        "old": PresenceUpdate(T0 - timedelta(hours=2), False),
        "new": PresenceUpdate(T0, True),
    }
    assert expire_presence(presence, T0) == {"new": presence["new"]}
    assert peak_viewers(0, presence, T0) == 1
    assert peak_viewers(5, presence, T0) == 5


def test_from_dict_matches_wire_format() -> None:
    wire = {
        "event_id": "e1",
        "type": "view",
        "stream_id": "s1",
        "viewer_id": "v1",
        "action": "join",
        "occurred_at": "2026-11-25T20:00:00.123Z",
        "extra": 1,
    }
    ev = LiveEvent.from_dict(wire)
    assert ev.occurred_at == T0 + timedelta(milliseconds=123)
    assert aggregate_batch([wire])["s1"].views == 1
    c = LiveEvent.from_dict(
        {
            "event_id": "c1",
            "type": "click",
            "stream_id": None,
            "viewer_id": None,
            "product_id": "p1",
            "campaign_id": "cmp",
            "link_code": "L",
            "occurred_at": "2026-11-25T21:00:00+01:00",
        }
    )
    assert c.occurred_at == T0 and c.stream_id is None and c.product_id == "p1"


def test_invalid_events() -> None:
    with pytest.raises(ValueError):
        view("v1", "wave", 0)
    with pytest.raises(ValueError):
        LiveEvent("x", "like", "s1", "v1", T0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        parse_utc("2026-11-25T20:00:00")
    with pytest.raises(ValueError):
        LiveEvent.from_dict({"event_id": "x", "type": "view", "action": "join", "occurred_at": 5})


@pytest.mark.parametrize(
    ("num", "den", "expected"),
    [(0, 0, 0.0), (5, 0, 0.0), (1, 3, 0.3333), (2, 3, 0.6667), (3, 3, 1.0), (7, 2, 3.5)],
)
def test_ratios(num: int, den: int, expected: float) -> None:
    assert ratio(num, den) == expected
    assert ctr(num, den) == expected
    assert cvr(num, den) == expected


def test_top_products() -> None:
    rows = top_products({"a": 5, "b": 5, "c": 1}, {"b": 2, "d": 3}, limit=3)
    assert rows == [("b", 5, 2), ("a", 5, 0), ("c", 1, 0)]
    assert top_products({}, {}) == []


def test_random_batches_are_order_and_split_independent() -> None:
    rng = random.Random(11)
    for _ in range(200):
        events: list[LiveEvent] = []
        for i in range(rng.randint(0, 80)):
            kind = rng.choice(["view", "view", "click", "add_to_cart"])
            viewer = f"v{rng.randint(0, 9)}"
            stream = rng.choice(["s1", "s2"])
            at = T0 + timedelta(milliseconds=rng.randint(0, 200_000))
            if kind == "view":
                action = rng.choice(["join", "heartbeat", "heartbeat", "leave"])
                events.append(LiveEvent(f"e{i}", "view", stream, viewer, at, action))  # type: ignore[arg-type]
            else:
                events.append(LiveEvent(f"e{i}", kind, stream, viewer, at, None, f"p{rng.randint(0, 4)}"))  # type: ignore[arg-type]
        whole = aggregate_batch(events)
        shuffled = events[:]
        rng.shuffle(shuffled)
        assert aggregate_batch(shuffled) == whole
        # splitting into batches and merging presence gives the same presence as one batch
        cut = rng.randint(0, len(events))
        parts = [aggregate_batch(shuffled[:cut]), aggregate_batch(shuffled[cut:])]
        for sid, delta in whole.items():
            merged: dict[str, PresenceUpdate] = {}
            views = clicks = 0
            for part in parts:
                if sid in part:
                    merged = merge_presence(merged, part[sid].presence)
                    views += part[sid].views
                    clicks += part[sid].clicks
            assert merged == delta.presence
            assert (views, clicks) == (delta.views, delta.clicks)
            # viewers_now == brute force over each viewer's latest view action
            now = T0 + timedelta(milliseconds=rng.randint(0, 260_000))
            latest: dict[str, tuple[datetime, int, str]] = {}
            rank = {"join": 0, "heartbeat": 1, "leave": 2}
            for ev in events:
                if ev.stream_id == sid and ev.type == "view" and ev.viewer_id and ev.action:
                    cand = (ev.occurred_at, rank[ev.action], ev.action)
                    if ev.viewer_id not in latest or cand[:2] > latest[ev.viewer_id][:2]:
                        latest[ev.viewer_id] = cand
            brute = sum(
                1 for at, _, action in latest.values() if action != "leave" and at >= now - timedelta(seconds=60)
            )
            assert viewers_now(delta.presence, now) == brute
