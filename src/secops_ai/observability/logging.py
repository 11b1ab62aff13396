"""One logging setup for the CLI and the server: human-readable by default, JSON lines on request.

``SECOPS_LOG_FORMAT=json`` writes one JSON object per line (``ts``, ``level``, ``logger``, ``message``,
``trace_id``, ``span_id``, and ``exc_info`` when there is one): what Loki, ELK or Vector ingest, joined to
traces by their ids.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime

from rich.logging import RichHandler

from secops_ai.observability.tracing import current_ids

_configured = False


class JsonFormatter(logging.Formatter):
    """A log record as one JSON line, with the current trace and span ids (null outside a trace)."""

    def format(self, record: logging.LogRecord) -> str:
        trace_id, span_id = current_ids()
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "trace_id": trace_id,
            "span_id": span_id,
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once; later calls only change the level."""
    global _configured
    if _configured:
        logging.getLogger().setLevel(level.upper())
        return
    if fmt == "json":
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
        _quiet_libraries()
    else:
        logging.basicConfig(level=level.upper(), format="%(name)s: %(message)s", datefmt="[%X]",
                            handlers=[RichHandler(rich_tracebacks=True, show_path=False)])
    _configured = True


def _quiet_libraries() -> None:
    """JSON mode: no progress bars on stderr, and transformers' messages through our handler, not its own."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.disable_default_handler()
    hf_logging.enable_propagation()
