"""Dead letters: the original bytes to ``<prefix>.dlq`` with the reason and source position in headers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

Headers = list[tuple[str, bytes]]
# send(topic, key, value, headers) -> awaitable delivery
Send = Callable[[str, bytes | None, bytes | None, Headers], Awaitable[object]]


def dlq_headers(reason: str, topic: str, partition: int, offset: int, index: int | None = None,
                detail: str = "") -> Headers:
    headers: Headers = [
        ("dlq.reason", reason.encode()),
        ("dlq.topic", topic.encode()),
        ("dlq.partition", str(partition).encode()),
        ("dlq.offset", str(offset).encode()),
    ]
    if index is not None:
        headers.append(("dlq.index", str(index).encode()))
    if detail:
        headers.append(("dlq.detail", detail[:500].encode()))
    return headers
