"""The setup audit log (docs/setup.md "Audit log"): who changed which setup entity, when, from what
to what. ClickHouse table ``setup_audit`` (migration 0105), written by the API *before* the change
goes to the setup topic, read by ``GET /v1/admin/audit``.

A row holds ``public_view`` of the entity before and after (no webhook secret, no key, no key
digest) and the actor's label (``admin`` or ``<role>:<owner>/<key_id>``, never the key). When
ClickHouse does not take the rows the change is refused (503) before anything is written.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from api.context import ApiContext
from api.stores import Ledger
from liveledger.errors import unavailable
from liveledger.storage.clickhouse import SETUP_AUDIT, SETUP_AUDIT_COLUMNS
from schemas.time import format_rfc3339, from_ms

log = logging.getLogger(__name__)

WRITE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class AuditChange:
    """One entity's change: ``before`` / ``after`` are JSON values without secrets (``None``: it did
    not exist / no longer exists)."""

    entity: str  # the setup kind: brand, creator, apikey, campaign, link, stream
    entity_id: str  # an api key's public key id, never its digest
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditLog:
    """Writes and reads ``setup_audit`` with the process's ClickHouse client (the ledger's)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._last_ms = 0

    def _next_ms(self) -> int:
        """Now in epoch ms, strictly after this process's previous entry (so entries sort in the
        order the changes were made; setup writes are serialised within a process)."""
        now = time.time_ns() // 1_000_000
        self._last_ms = max(now, self._last_ms + 1)
        return self._last_ms

    async def record(self, actor: str, action: str, changes: Sequence[AuditChange]) -> None:
        """Store the entries of one change, or raise 503 (``audit_unavailable``): nothing may change."""
        at = from_ms(self._next_ms())
        change_id = uuid.uuid4().hex
        rows = [[at, change_id, seq, actor, action, c.entity, c.entity_id, orjson.dumps(c.before).decode(),
                 orjson.dumps(c.after).decode()] for seq, c in enumerate(changes)]
        try:
            client = await self.ledger.client()
            await asyncio.wait_for(client.insert(f"{self.ledger.db}.{SETUP_AUDIT}", rows,
                                                 column_names=SETUP_AUDIT_COLUMNS), WRITE_TIMEOUT_S)
        except Exception as exc:  # ClickHouse down or slow: refuse the change, nothing was written
            log.error("audit log write failed (%s %s): %r", action, [c.entity_id for c in changes], exc)
            raise unavailable("the audit log is unavailable: nothing was changed, retry shortly", 2,
                              code="audit_unavailable") from exc

    async def entries(self, since: datetime | None, limit: int) -> list[dict[str, Any]]:
        """Entries at or after ``since`` (all when ``None``), oldest first, at most ``limit``."""
        where = "1"
        params: dict[str, Any] = {"limit": limit}
        if since is not None:
            where, params["since"] = "at >= {since:DateTime64(3, 'UTC')}", since
        sql = (f"SELECT at, actor, action, entity, entity_id, before_json, after_json "
               f"FROM {self.ledger.db}.{SETUP_AUDIT} FINAL WHERE {where} "
               f"ORDER BY at, change_id, seq LIMIT {{limit:UInt32}}")
        try:
            client = await self.ledger.client()
            result = await client.query(sql, parameters=params)
        except Exception as exc:
            log.error("audit log read failed: %r", exc)
            raise unavailable("the audit log is unavailable, retry shortly", 2, code="audit_unavailable") from exc
        return [{"at": format_rfc3339(_utc(at)), "actor": actor, "action": action, "entity": entity,
                 "entity_id": entity_id, "before": orjson.loads(before), "after": orjson.loads(after)}
                for at, actor, action, entity, entity_id, before, after in result.result_rows]


def audit_log_of(ctx: ApiContext) -> AuditLog:
    """The process's one :class:`AuditLog` (kept in ``ctx.extras["audit"]``, shared with the setup
    routes), for entries other than setup changes: ``payout.force``, ``viewer.erase``."""
    audit = ctx.extras.get("audit")
    if audit is None:
        audit = ctx.extras["audit"] = AuditLog(ctx.extras["ledger"])
    assert isinstance(audit, AuditLog)
    return audit


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
