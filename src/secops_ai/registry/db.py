"""Registry tables (SQLAlchemy 2): models, stage changes (the audit trail) and evaluation-gate results."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class ModelRow(Base):
    __tablename__ = "registry_models"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)  # "<provider>/<run-id>"
    provider: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(190))
    stage: Mapped[str] = mapped_column(String(16), default="candidate", index=True)
    kind: Mapped[str] = mapped_column(String(16), default="adapter")  # adapter | full | merged
    training_stage: Mapped[str | None] = mapped_column(String(16), nullable=True)  # sft | dpo | orpo
    base_model: Mapped[str | None] = mapped_column(String(255), nullable=True)
    dataset: Mapped[str | None] = mapped_column(String(255), nullable=True)
    parent: Mapped[str | None] = mapped_column(String(255), nullable=True)  # merged from
    path: Mapped[str] = mapped_column(Text)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class StageEvent(Base):
    """Every stage change, in order: who, when, why, and whether a failed/missing gate was overridden."""

    __tablename__ = "registry_stage_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(ForeignKey("registry_models.name"), index=True)
    action: Mapped[str] = mapped_column(String(32))  # register | promote | archive | rollback | demote
    from_stage: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_stage: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    ts: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class GateResult(Base):
    __tablename__ = "registry_gate_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(ForeignKey("registry_models.name"), index=True)
    passed: Mapped[bool] = mapped_column(Boolean)
    summary: Mapped[dict] = mapped_column(JSON, default=dict)
    ts: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
