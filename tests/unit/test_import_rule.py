"""The import rule of docs/architecture.md ("Import rule"), checked over the source tree (no services).

Each first-party module belongs to one unit; a unit may import only the units listed for it:

- ``liveledger.domain``: pure money rules, imports no other unit;
- ``schemas``: the typed contract (HTTP bodies, Kafka records), may use the domain's formulas;
- ``liveledger``: shared infrastructure (settings, topics, Kafka, setup replica, auth, errors and
  ``liveledger.storage``: Redis keys, Lua, ClickHouse tables and row codecs);
- the services ``ingest``, ``api``, ``streams``, ``consumers`` and the simulator ``producers``: each
  may import ``schemas`` and ``liveledger``, never another service;
- tools (the CLI ``liveledger.cli*``, ``bench``, ``loadtests``, ``devstack``, ``tests``) may import anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("ingest", "api", "streams", "consumers", "producers")
SHARED = ("schemas", "liveledger")
ALLOWED: dict[str, set[str]] = {
    "liveledger.domain": set(),
    "schemas": {"liveledger.domain"},
    "liveledger": {"schemas", "liveledger.domain"},
    **{s: {"schemas", "liveledger", "liveledger.domain"} for s in SERVICES},
}
FIRST_PARTY = {*SERVICES, *SHARED, "bench", "loadtests", "devstack", "tests"}


def unit_of_module(name: str) -> str | None:
    """The unit a dotted module name belongs to (``None``: not first-party)."""
    parts = name.split(".")
    if parts[0] not in FIRST_PARTY:
        return None
    if parts[0] == "liveledger" and len(parts) > 1:
        if parts[1] == "domain":
            return "liveledger.domain"
        if parts[1].startswith("cli"):
            return "liveledger.cli"
    return parts[0]


def unit_of_file(path: Path, root: Path) -> str | None:
    rel = path.relative_to(root).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return unit_of_module(".".join(parts)) if parts else None


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """Every absolute import in a module, including ones inside functions."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


def violations(root: Path) -> list[str]:
    """``"<file>:<line>: <unit> imports <module>"`` for every import the rule forbids."""
    found = []
    for top in (*SERVICES, *SHARED):
        for path in sorted((root / top).rglob("*.py")):
            unit = unit_of_file(path, root)
            if unit is None or unit not in ALLOWED:
                continue  # tools may import anything
            for line, module in imported_modules(ast.parse(path.read_text(), str(path))):
                target = unit_of_module(module)
                if target is not None and target != unit and target not in ALLOWED[unit]:
                    found.append(f"{path.relative_to(root)}:{line}: {unit} imports {module}")
    return found


def test_the_tree_follows_the_import_rule() -> None:
    assert violations(REPO) == []


def test_the_rule_catches_a_service_importing_another(tmp_path: Path) -> None:
    (tmp_path / "ingest").mkdir()
    (tmp_path / "ingest" / "app.py").write_text("from api.stores import Ledger\n")
    (tmp_path / "streams").mkdir()
    (tmp_path / "streams" / "live.py").write_text("def f():\n    import consumers.sink\n")
    (tmp_path / "liveledger" / "domain").mkdir(parents=True)
    (tmp_path / "liveledger" / "domain" / "rules.py").write_text("from liveledger.settings import Settings\n")
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "ok.py").write_text("from liveledger.domain.commission import net_minor\n")
    (tmp_path / "liveledger" / "cli.py").write_text("from consumers.migrate import migrate_cli\n")
    assert sorted(violations(tmp_path)) == [
        "ingest/app.py:1: ingest imports api.stores",
        "liveledger/domain/rules.py:1: liveledger.domain imports liveledger.settings",
        "streams/live.py:2: streams imports consumers.sink",
    ]
