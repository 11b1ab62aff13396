"""The dataset store: immutable, versioned datasets under ``$SECOPS_HOME/data/<provider>/<name>-v<N>/``.

A version folder holds ``records.jsonl`` (one record a line, validated against its kind's pydantic model)
and ``manifest.json`` (:class:`Manifest`). It is written into a temporary folder, renamed into place and
made read-only; an existing version is never overwritten. Records are serialised canonically, so the same
records always give a byte-identical ``records.jsonl``; the manifest is deterministic too except for
``created_at``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from secops_ai.config import Workspace
from secops_ai.config.atomic import atomic_dir, make_read_only
from secops_ai.config.confine import is_inside
from secops_ai.data.schemas import DatasetKind, record_model

log = logging.getLogger(__name__)

RECORDS_FILE = "records.jsonl"
MANIFEST_FILE = "manifest.json"
SCHEMA_VERSION = 1
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_REF = re.compile(r"^(?P<provider>[^/@\s]+)/(?P<name>[^/@\s]+?)(?:@(?P<version>v?\d+|latest))?$")


class DatasetError(Exception):
    """A dataset could not be created, found or read; the message says what and where."""


class DatasetExistsError(DatasetError, FileExistsError):
    pass


class DatasetNotFoundError(DatasetError, LookupError):
    pass


class DatasetIntegrityError(DatasetError):
    """A stored dataset's files no longer match its manifest (or are links); it is not served."""


class RecordValidationError(DatasetError, ValueError):
    """A record failed validation: names the file, the 1-based line and the field."""

    def __init__(self, file: str, line: int, field: str, message: str) -> None:
        self.file, self.line, self.field, self.reason = file, line, field, message
        super().__init__(f"{file}:{line}: field '{field}': {message}")


class FileDigest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sha256: str
    bytes: int


class SourceRef(BaseModel):
    """An input a dataset was built from: a file (with its hash) or another dataset version."""

    model_config = ConfigDict(extra="forbid")
    uri: str  # file name, package resource ("cwe2:cwec_v4.14.xml") or dataset ref ("starter/cwe@1")
    sha256: str | None = None
    bytes: int | None = None
    format: str | None = None


class GeneratorInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    version: str = "1"
    config: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None


class Manifest(BaseModel):
    provider: str
    name: str
    version: int = Field(ge=1)
    kind: DatasetKind
    schema_: str = Field(alias="schema", serialization_alias="schema")
    record_count: int = Field(ge=0)
    files: dict[str, FileDigest]
    sources: list[SourceRef] = Field(default_factory=list)
    parent: str | None = None
    generator: GeneratorInfo | None = None
    license: str | None = None
    description: str | None = None
    created_at: str  # the only field that differs between two builds of the same dataset

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @property
    def ref(self) -> str:
        return f"{self.provider}/{self.name}@{self.version}"

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json", by_alias=True), indent=2, ensure_ascii=False) + "\n"


class Dataset:
    """One stored, read-only dataset version."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = path
        self.manifest = manifest

    def __repr__(self) -> str:
        return f"Dataset({self.manifest.ref}, kind={self.manifest.kind}, records={self.manifest.record_count})"

    @property
    def ref(self) -> str:
        return self.manifest.ref

    @property
    def records_path(self) -> Path:
        return self.path / RECORDS_FILE

    def iter_records(self) -> Iterator[dict[str, Any]]:
        """Stream the records as dicts (one line at a time; the file is never loaded whole).

        The file is opened without following a symlink (``O_NOFOLLOW``): a link planted in place of
        ``records.jsonl`` is an error, never a way to read another file.
        """
        with _open_no_follow(self.records_path) as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)

    def head(self, n: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for rec in self.iter_records():
            if len(out) >= n:
                break
            out.append(rec)
        return out

    def check_integrity(self) -> None:
        """Raise :class:`DatasetIntegrityError` unless ``records.jsonl`` is a regular file whose sha256 and
        size match the manifest. The hash is recomputed only when the file's inode, size or mtime changed."""
        digest = self.manifest.files.get(RECORDS_FILE)
        if digest is None:
            raise DatasetIntegrityError(f"{self.ref}: the manifest lists no {RECORDS_FILE}")
        try:
            st = os.lstat(self.records_path)
        except OSError:
            raise DatasetIntegrityError(f"{self.ref}: {RECORDS_FILE} is missing") from None
        if not stat.S_ISREG(st.st_mode):
            raise DatasetIntegrityError(f"{self.ref}: {RECORDS_FILE} is not a regular file")
        key = (str(self.records_path), st.st_ino, st.st_size, st.st_mtime_ns, digest.sha256)
        if key in _VERIFIED:
            return
        if st.st_size != digest.bytes or _hash_no_follow(self.records_path) != digest.sha256:
            raise DatasetIntegrityError(f"{self.ref}: {RECORDS_FILE} does not match its manifest's sha256 "
                                        f"(changed after it was written); run `secops-ai data verify {self.ref}`")
        if len(_VERIFIED) > 1024:
            _VERIFIED.clear()
        _VERIFIED.add(key)

    def verified_head(self, n: int) -> list[dict[str, Any]]:
        """:meth:`head`, but only from a records file that matches the manifest (what the API serves)."""
        self.check_integrity()
        return self.head(n)


_VERIFIED: set[tuple[str, int, int, int, str]] = set()


def _open_no_follow(path: Path) -> IO[str]:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DatasetIntegrityError(f"{path.name} is a symlink; dataset files must be regular files") from None
        raise
    return os.fdopen(fd, encoding="utf-8")


def _hash_no_follow(path: Path) -> str:
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_ref(ref: str) -> tuple[str, str, int | None]:
    """``provider/name@N`` (or ``@vN``, ``@latest``, no version = latest) → ``(provider, name, N | None)``."""
    m = _REF.match(ref.strip())
    if not m:
        raise DatasetError(f"bad dataset reference {ref!r}; expected 'provider/name@version', "
                           "e.g. 'starter/security-sft@1'")
    v = m.group("version")
    version = None if v in (None, "latest") else int(v.lstrip("v"))
    return m.group("provider"), m.group("name"), version


def canonical_line(record: dict[str, Any]) -> bytes:
    """The one serialisation of a record: compact JSON, UTF-8, keys in model order, trailing newline."""
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def hash_file(path: Path) -> FileDigest:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return FileDigest(sha256=h.hexdigest(), bytes=size)


def source_file(path: Path | str, *, format: str | None = None, uri: str | None = None) -> SourceRef:
    """A :class:`SourceRef` for a file, hashed (streaming) so the manifest pins the exact input."""
    p = Path(path)
    d = hash_file(p)
    return SourceRef(uri=uri or p.name, sha256=d.sha256, bytes=d.bytes, format=format)


def _field_of(err: ValidationError) -> tuple[str, str]:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ())) or "<record>"
    return loc, first.get("msg", "invalid")


def validate_record(kind: DatasetKind | str, record: Any, *, file: str, line: int) -> dict[str, Any]:
    """Validate one record; return its canonical dict or raise :class:`RecordValidationError`."""
    model = record_model(kind)
    if type(record) is model:  # already validated by an importer: don't pay for it twice
        return record.model_dump(mode="json", exclude_none=True)
    if isinstance(record, BaseModel):
        record = record.model_dump(mode="json", exclude_none=True)
    if not isinstance(record, dict):
        raise RecordValidationError(file, line, "<record>", f"expected a JSON object, got {type(record).__name__}")
    try:
        obj = model.model_validate(record)
    except ValidationError as exc:
        field, msg = _field_of(exc)
        raise RecordValidationError(file, line, field, msg) from None
    return obj.model_dump(mode="json", exclude_none=True)


def read_jsonl(path: Path | str) -> Iterator[tuple[int, Any]]:
    """``(line_number, parsed)`` for each non-blank line of a JSONL file; bad JSON names file and line."""
    p = Path(path)
    with p.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as exc:
                raise RecordValidationError(str(p), n, "<json>",
                                            f"invalid JSON: {exc.msg} (column {exc.colno})") from None


class DatasetStore:
    """Create, read, list and verify dataset versions in a workspace."""

    def __init__(self, workspace: Workspace | Path | str) -> None:
        self.workspace = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
        self.root = self.workspace.data
        if self.root not in _SWEPT:  # once per process and store: leftovers of writers that were killed
            _SWEPT.add(self.root)
            self.clean_partials()

    def _confined(self, path: Path) -> bool:
        """``path`` (links resolved) lies inside SECOPS_HOME: a planted link out of it is never read."""
        return is_inside(path, self.workspace.root)

    # -- crash leftovers ----------------------------------------------------------------------------------
    def clean_partials(self, *, min_age_s: float = 3600.0) -> list[Path]:
        """Remove the temporary ``.<name>-vN.*.partial`` folders of imports that died (kill -9, power loss).

        A live writer holds an exclusive ``flock`` on ``.writer`` inside its folder for as long as it runs,
        and the kernel drops that lock when the process dies however it dies; so a folder whose lock can be
        taken is stale and removed, and one whose lock is held is left alone. A folder without the lock
        file (a writer that died in the instant before creating it) is removed only when older than
        ``min_age_s``. Returns the removed folders.
        """
        removed: list[Path] = []
        if not self.root.is_dir():
            return removed
        for tmp in self.root.glob("*/.*.partial"):
            if tmp.parent.name == "nanogpt" or tmp.is_symlink() or not tmp.is_dir():
                continue  # pretraining corpora are written by their own exporter
            if _writer_alive(tmp, min_age_s):
                continue
            _make_writable(tmp)
            shutil.rmtree(tmp, ignore_errors=True)
            if not tmp.exists():
                removed.append(tmp)
                log.warning("removed %s, left by an import that did not finish", tmp)
        return removed

    # -- layout -------------------------------------------------------------------------------------------
    def version_path(self, provider: str, name: str, version: int) -> Path:
        return self.root / provider / f"{name}-v{version}"

    def versions(self, provider: str, name: str) -> list[int]:
        folder = self.root / provider
        if not folder.is_dir():
            return []
        rx = re.compile(rf"^{re.escape(name)}-v(\d+)$")
        out = []
        for child in folder.iterdir():
            m = rx.match(child.name)
            if m and (child / MANIFEST_FILE).is_file() and self._confined(child / MANIFEST_FILE):
                out.append(int(m.group(1)))
        return sorted(out)

    def exists(self, ref: str) -> bool:
        try:
            self.get(ref)
        except DatasetNotFoundError:
            return False
        return True

    # -- write --------------------------------------------------------------------------------------------
    def create(
        self,
        provider: str,
        name: str,
        kind: DatasetKind | str,
        records: Iterable[dict[str, Any] | BaseModel],
        *,
        sources: Iterable[SourceRef | dict[str, Any]] = (),
        generator: GeneratorInfo | dict[str, Any] | None = None,
        license: str | None = None,
        parent: str | None = None,
        version: int | None = None,
        description: str | None = None,
        source_file_name: str | None = None,
        created_at: str | None = None,
    ) -> Manifest:
        """Validate ``records`` (streaming) and write them as a new read-only version; return its manifest.

        ``version=None`` takes the next free version. An existing version raises :class:`DatasetExistsError`
        before anything is read. One invalid record raises :class:`RecordValidationError` naming
        ``source_file_name`` (or ``records.jsonl``), the 1-based line and the field, and nothing is written.
        """
        kind = DatasetKind(kind)
        for label, value in (("provider", provider), ("name", name)):
            if not _NAME.match(value):
                raise DatasetError(f"bad dataset {label} {value!r}: use lowercase letters, digits, '.', '_', '-'")
        if version is None:
            existing = self.versions(provider, name)
            version = (existing[-1] + 1) if existing else 1
        if version < 1:
            raise DatasetError(f"version must be >= 1, got {version}")
        final = self.version_path(provider, name, version)
        if final.exists():
            raise DatasetExistsError(
                f"dataset {provider}/{name}@{version} already exists at {final}; versions are immutable, "
                "create a new version instead")
        if parent is not None:
            self.get(parent)  # the parent must exist
        src_name = source_file_name or RECORDS_FILE
        try:
            # the writer lock tells clean_partials that this folder is being written (released on exit)
            with atomic_dir(final) as tmp, _hold_writer_lock(tmp):
                h = hashlib.sha256()
                count = size = 0
                with (tmp / RECORDS_FILE).open("wb") as fh:
                    for i, rec in enumerate(records, start=1):
                        line = canonical_line(validate_record(kind, rec, file=src_name, line=i))
                        fh.write(line)
                        h.update(line)
                        size += len(line)
                        count += 1
                manifest = Manifest(
                    provider=provider, name=name, version=version, kind=kind,
                    schema=f"secops-ai/{kind.value}@{SCHEMA_VERSION}", record_count=count,
                    files={RECORDS_FILE: FileDigest(sha256=h.hexdigest(), bytes=size)},
                    sources=[s if isinstance(s, SourceRef) else SourceRef.model_validate(s) for s in sources],
                    parent=parent,
                    generator=(generator if isinstance(generator, GeneratorInfo) or generator is None
                               else GeneratorInfo.model_validate(generator)),
                    license=license, description=description,
                    created_at=created_at or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                )
                (tmp / MANIFEST_FILE).write_text(manifest.to_json(), encoding="utf-8")
                (tmp / WRITER_FILE).unlink()  # not part of the dataset; the lock itself stays held until closed
        except FileExistsError as exc:
            raise DatasetExistsError(f"dataset {provider}/{name}@{version} was created concurrently: {exc}") from None
        make_read_only(final)
        return manifest

    # -- read ---------------------------------------------------------------------------------------------
    def _load(self, path: Path) -> Dataset:
        mpath = path / MANIFEST_FILE
        if not self._confined(mpath) or not self._confined(path):
            raise DatasetNotFoundError(f"{path.name}: not a dataset inside the workspace (a link out of it?)")
        try:
            manifest = Manifest.model_validate_json(mpath.read_text(encoding="utf-8"))
        except (OSError, ValidationError, ValueError) as exc:
            raise DatasetError(f"{mpath}: unreadable manifest: {exc}") from None
        return Dataset(path, manifest)

    def get(self, ref: str) -> Dataset:
        """The dataset for ``provider/name@N`` (``provider/name`` or ``@latest`` = highest version)."""
        provider, name, version = parse_ref(ref)
        if version is None:
            versions = self.versions(provider, name)
            if not versions:
                raise DatasetNotFoundError(f"no dataset {provider}/{name} in {self.root}")
            version = versions[-1]
        path = self.version_path(provider, name, version)
        if not (path / MANIFEST_FILE).is_file():
            known = self.versions(provider, name)
            hint = f"; versions present: {', '.join(map(str, known))}" if known else ""
            raise DatasetNotFoundError(f"no dataset {provider}/{name}@{version} in {self.root}{hint}")
        return self._load(path)

    def list(self) -> list[Manifest]:
        """Manifests of every stored version, sorted by provider, name, version."""
        out: list[Manifest] = []
        if not self.root.is_dir():
            return out
        for mpath in self.root.glob(f"*/*-v*/{MANIFEST_FILE}"):
            try:
                out.append(self._load(mpath.parent).manifest)
            except DatasetError as exc:  # one broken or planted folder never fails the listing
                log.warning("skipping %s: %s", mpath.parent.relative_to(self.root), exc)
                continue
        return sorted(out, key=lambda m: (m.provider, m.name, m.version))

    # -- verify -------------------------------------------------------------------------------------------
    def verify(self, ref: str) -> list[str]:
        """Recompute every file's hash and the record count; return problems (empty list = intact).

        Each problem names the file: ``records.jsonl: sha256 mismatch (expected .., found ..)``, a missing
        file, an unexpected extra file, or a record-count mismatch.
        """
        ds = self.get(ref)
        problems: list[str] = []
        for fname, digest in sorted(ds.manifest.files.items()):
            fpath = ds.path / fname
            if not fpath.is_file():
                problems.append(f"{fname}: missing")
                continue
            got = hash_file(fpath)
            if got.sha256 != digest.sha256:
                problems.append(f"{fname}: sha256 mismatch (manifest {digest.sha256[:16]}…, file {got.sha256[:16]}…, "
                                f"{digest.bytes} → {got.bytes} bytes)")
        expected = set(ds.manifest.files) | {MANIFEST_FILE}
        for child in sorted(ds.path.iterdir()):
            if child.name not in expected:
                problems.append(f"{child.name}: unexpected file (not in manifest)")
        if not problems:
            n = sum(1 for _ in ds.iter_records())
            if n != ds.manifest.record_count:
                problems.append(f"{RECORDS_FILE}: {n} records, manifest says {ds.manifest.record_count}")
        return problems


WRITER_FILE = ".writer"
_SWEPT: set[Path] = set()


def _hold_writer_lock(folder: Path) -> IO[str]:
    """Create ``folder/.writer`` (pid, start time) and hold an exclusive flock on it; close to release."""
    import fcntl

    fh = (folder / WRITER_FILE).open("w", encoding="utf-8")
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
    fh.write(json.dumps({"pid": os.getpid(), "started": time.time()}))
    fh.flush()
    return fh


def _writer_alive(folder: Path, min_age_s: float) -> bool:
    import fcntl

    lock = folder / WRITER_FILE
    try:
        fd = os.open(lock, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:  # no lock file: trust only its age
        try:
            return time.time() - folder.stat().st_mtime < min_age_s
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True  # held: a writer is at work
    finally:
        os.close(fd)
    return False


def _make_writable(root: Path) -> None:
    for dirpath, _dirs, _files in os.walk(root):
        with contextlib.suppress(OSError):
            os.chmod(dirpath, 0o700)


def default_store() -> DatasetStore:
    """The store of the workspace configured by ``SECOPS_HOME``."""
    from secops_ai.config import get_settings

    return DatasetStore(get_settings().workspace)
