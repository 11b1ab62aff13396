"""Tables that never cut a value: at any terminal width an id or a metric name is folded onto the next
line instead of ending in "…" (rich's default), so what a user copies from a table is always whole."""

from __future__ import annotations

from rich.table import Table


def fold_table(table: Table) -> Table:
    """``table`` with every column set to fold long values (wrap mid-word) rather than truncate them."""
    for column in table.columns:
        column.overflow = "fold"
        column.no_wrap = False
    return table
