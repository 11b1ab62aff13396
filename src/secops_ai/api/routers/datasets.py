"""Read-only dataset routes: translate HTTP into calls to ``secops_ai.data``, nothing more.

``GET /datasets``                                    every stored version's manifest
``GET /datasets/{provider}/{name}/{version}``        one manifest and its first records (``?limit=``)

Nothing outside ``SECOPS_HOME`` is listed or served (links are resolved first), and records are served only
from a ``records.jsonl`` whose sha256 matches its manifest (409 otherwise).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from secops_ai.api.deps import SettingsDep
from secops_ai.api.errors import APIError
from secops_ai.api.openapi_doc import errors
from secops_ai.data.store import DatasetError, DatasetIntegrityError, DatasetNotFoundError, DatasetStore

router = APIRouter(tags=["datasets"])


def _store(settings: SettingsDep) -> DatasetStore:
    return DatasetStore(settings.workspace)


@router.get("/datasets")
def list_datasets(store: DatasetStore = Depends(_store)) -> dict[str, Any]:
    """Manifests of every dataset version, sorted by provider, name, version."""
    data = [m.model_dump(mode="json", by_alias=True) | {"ref": m.ref} for m in store.list()]
    return {"object": "list", "data": data}


@router.get("/datasets/{provider}/{name}/{version}", responses=errors(404, 409))
def get_dataset(provider: str, name: str, version: str,
                limit: int = Query(5, ge=0, le=100, description="How many leading records to include."),
                store: DatasetStore = Depends(_store)) -> dict[str, Any]:
    """One version's manifest plus its first ``limit`` records; ``version`` is ``N``, ``vN`` or ``latest``."""
    v = version.lower().removeprefix("v")
    if v != "latest" and not v.isdigit():
        raise APIError(400, f"version must be a number or 'latest', got {version!r}", param="version")
    try:
        ds = store.get(f"{provider}/{name}@{v}")
        records = ds.verified_head(limit)  # only records whose file still matches the manifest's sha256
    except DatasetNotFoundError as exc:
        raise APIError(404, _public(str(exc), store), code="dataset_not_found") from None
    except DatasetIntegrityError as exc:
        raise APIError(409, _public(str(exc), store), code="dataset_integrity_error") from None
    except DatasetError as exc:
        raise APIError(400, _public(str(exc), store)) from None
    except (OSError, ValueError) as exc:  # unreadable file or a torn line: named, never a 500
        raise APIError(409, f"{provider}/{name}@{v}: records are unreadable ({type(exc).__name__})",
                       code="dataset_integrity_error") from None
    return {"ref": ds.ref, "manifest": ds.manifest.model_dump(mode="json", by_alias=True), "records": records}


def _public(message: str, store: DatasetStore) -> str:
    """An error message without the server's own paths (the workspace shows as ``data/``)."""
    return message.replace(str(store.root), "data").replace(str(store.workspace.root), "$SECOPS_HOME")
