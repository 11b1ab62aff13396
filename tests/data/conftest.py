"""Fixtures for the data tests: a store in the per-test workspace, and one starter build shared read-only."""

from __future__ import annotations

from pathlib import Path

import pytest

from secops_ai.config import Workspace
from secops_ai.data.generators.starter import build_starter
from secops_ai.data.store import DatasetStore

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(workspace: Workspace) -> DatasetStore:
    return DatasetStore(workspace)


@pytest.fixture(scope="session")
def starter_store(tmp_path_factory: pytest.TempPathFactory) -> DatasetStore:
    """The starter datasets, built once per session (tests must not write to this store)."""
    store = DatasetStore(Workspace(tmp_path_factory.mktemp("starter-home")).ensure())
    build_starter(store)
    return store


def chat(user: str = "What is CWE-79?", answer: str = "Cross-site scripting.") -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}
