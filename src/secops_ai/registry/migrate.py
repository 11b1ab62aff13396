"""Copy the registry from one database to another (typically the default SQLite file into PostgreSQL).

Every table is copied as is, ids included, in dependency order inside one transaction on the target, and
the copy is checked by counting rows on both sides; a target that already holds registry rows is refused so
nothing is duplicated or mixed. The source is only read.
"""

from __future__ import annotations

from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import make_url

from secops_ai.registry.db import Base
from secops_ai.registry.registry import RegistryError, _engine


def migrate(source_url: str, target_url: str) -> dict[str, int]:
    """Copy every registry table from ``source_url`` into ``target_url``; returns rows copied per table."""
    if make_url(source_url) == make_url(target_url):
        raise RegistryError("source and target are the same database")
    source, target = _engine(source_url), _engine(target_url)
    try:
        tables = Base.metadata.sorted_tables  # parents (models) before children (events, gate results)
        with source.connect() as conn:
            missing = [t.name for t in tables if not source.dialect.has_table(conn, t.name)]
            if len(missing) == len(tables):
                raise RegistryError(f"{_safe(source_url)} holds no registry tables; nothing to migrate")
            rows = {t.name: [dict(r) for r in conn.execute(select(t)).mappings()] if t.name not in missing
                    else [] for t in tables}
        Base.metadata.create_all(target)
        with target.begin() as conn:
            busy = {t.name: n for t in tables if (n := conn.execute(select(func.count()).select_from(t)).scalar())}
            if busy:
                raise RegistryError(f"{_safe(target_url)} already holds registry rows ({busy}); migrate into an "
                                    "empty database so nothing is duplicated or mixed")
            for t in tables:
                if rows[t.name]:
                    conn.execute(insert(t), rows[t.name])
            if target.dialect.name == "postgresql":  # ids were copied: move the sequences past them
                for t in tables:
                    pk = list(t.primary_key.columns)
                    if len(pk) == 1 and pk[0].autoincrement is not False and pk[0].type.python_type is int:
                        conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{t.name}', '{pk[0].name}'), "
                                          f"COALESCE((SELECT MAX({pk[0].name}) FROM {t.name}), 0) + 1, false)"))
            copied = {t.name: conn.execute(select(func.count()).select_from(t)).scalar() or 0 for t in tables}
        for t in tables:
            if copied[t.name] != len(rows[t.name]):
                raise RegistryError(f"{t.name}: copied {copied[t.name]} rows of {len(rows[t.name])}")
        return copied
    finally:
        source.dispose()
        target.dispose()


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
