"""The one storage layer: Redis key names and Lua scripts, ClickHouse table names, columns and row codecs.

Every process (ingest, API, stream workers, sink) reaches Redis and ClickHouse through names defined
here, so a key or a table is renamed in one place (docs/architecture.md, "Import rule").
"""
