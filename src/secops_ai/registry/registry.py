"""The model registry: which runs exist and which stage each is in (candidate -> production -> archived).

Run folders under ``models/<provider>/<run-id>/`` are the source of truth for weights; the database holds
stages, the audit trail and gate results. A finished run folder (it has ``run.json``) that the database does
not know yet is registered as a candidate the next time the registry is read, so training never has to talk
to the database and a failed run, which leaves no folder, registers nothing. Nothing is ever deleted.
"""

from __future__ import annotations

import getpass
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, make_url, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from secops_ai.config import Settings, get_settings
from secops_ai.config.confine import is_inside
from secops_ai.registry import model_card
from secops_ai.registry.db import Base, GateResult, ModelRow, StageEvent, utcnow

log = logging.getLogger(__name__)

STAGES = ("candidate", "production", "archived")


class RegistryError(ValueError):
    """A registry operation is not possible; the message says why."""


class PromotionRefused(RegistryError):
    """Promotion needs a passing evaluation gate (or ``force`` with a reason)."""


@dataclass
class ModelRecord:
    name: str
    provider: str
    run_id: str
    stage: str
    kind: str
    path: Path
    training_stage: str | None = None
    base_model: str | None = None
    dataset: str | None = None
    parent: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    gate: dict[str, Any] | None = None  # latest gate result: passed, summary, ts
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items()}
        out["path"] = str(self.path)
        for k in ("created_at", "updated_at"):
            out[k] = out[k].isoformat() + "Z" if out[k] else None
        return out


POSTGRES_EXTRA = "pip install 'secops-ai[postgres]'"


def _engine(url: str):
    """An engine for ``url``; a missing driver or a URL the project does not support is a clear
    :class:`RegistryError` naming the fix, never a traceback (the password is never repeated)."""
    try:
        parsed = make_url(url)
    except Exception:  # sqlalchemy raises ArgumentError for anything unparseable
        raise RegistryError("DATABASE_URL is not a database URL; expected e.g. "
                            "postgresql+psycopg://user:password@host:5432/dbname or sqlite:///path.db") from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend == "postgresql" and driver != "psycopg":
        raise RegistryError(f"DATABASE_URL uses the PostgreSQL driver {driver!r}; SecOps AI supports psycopg 3: "
                            f"write postgresql+psycopg://... and {POSTGRES_EXTRA}")
    if backend not in ("sqlite", "postgresql"):
        raise RegistryError(f"DATABASE_URL names {backend!r}; supported: sqlite:///... (default) and "
                            "postgresql+psycopg://...")
    try:
        engine = create_engine(url, future=True)
    except ImportError:
        raise RegistryError(f"DATABASE_URL uses PostgreSQL but its driver (psycopg 3) is not installed: "
                            f"{POSTGRES_EXTRA}") from None
    if url.startswith("sqlite"):
        @event.listens_for(engine, "connect")
        def _pragma(dbapi_conn, _record):  # several processes (server, CLI, trainer) share the file
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
    return engine


class Registry:
    """``Registry(settings)``: SQLite at ``settings.db_url`` by default, PostgreSQL through ``DATABASE_URL``."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.workspace = self.settings.workspace
        if self.settings.db_url.startswith("sqlite:///"):
            self.workspace.root.mkdir(parents=True, exist_ok=True)
        self.engine = _engine(self.settings.db_url)
        try:
            Base.metadata.create_all(self.engine)
        except OperationalError as exc:
            where = make_url(self.settings.db_url).render_as_string(hide_password=True)
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            raise RegistryError(f"cannot reach the registry database {where}: {reason}") from None
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    # -- discovery -------------------------------------------------------------------------------------

    def sync(self) -> list[str]:
        """Register finished run folders the database does not know yet; returns their names."""
        models = self.workspace.models
        if not models.is_dir():
            return []
        added = []
        with self._session() as s:
            known = set(s.scalars(select(ModelRow.name)))
        for run_json in sorted(models.glob("*/*/run.json")):
            run_dir = run_json.parent
            if run_dir.parent.name == "base" or run_dir.name.startswith("."):
                continue
            if run_dir.is_symlink() or run_dir.parent.is_symlink() or not is_inside(run_json, models):
                log.warning("Not registering %s: it is (or is reached through) a symlink; runs must be real "
                            "folders inside %s", run_dir.name, models)
                continue
            name = f"{run_dir.parent.name}/{run_dir.name}"
            if name not in known:
                try:
                    self.register(run_dir)
                    added.append(name)
                except RegistryError as exc:
                    log.warning("Not registering %s: %s", run_dir, exc)
        return added

    def register(self, run_dir: Path, *, actor: str | None = None) -> ModelRecord:
        """Add the finished run in ``run_dir`` (``models/<provider>/<run-id>/``) as a candidate."""
        run_dir = Path(run_dir)
        if run_dir.is_symlink() or not is_inside(run_dir / "run.json", self.workspace.models):
            raise RegistryError(f"{run_dir.name}: a run must be a real folder under models/<provider>/ "
                                "(not a symlink, not outside the workspace)")
        try:
            info = json.loads((run_dir / "run.json").read_text())
            if not isinstance(info, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            raise RegistryError(f"{run_dir}: not a finished run (run.json unreadable: {exc})") from None
        name = f"{run_dir.parent.name}/{run_dir.name}"
        with self._session.begin() as s:
            if s.get(ModelRow, name) is not None:
                raise RegistryError(f"{name} is already registered")
            s.add(ModelRow(name=name, provider=run_dir.parent.name, run_id=run_dir.name, stage="candidate",
                           kind=info.get("kind", "adapter"), training_stage=info.get("stage"),
                           base_model=info.get("base_model"), dataset=info.get("dataset"),
                           parent=info.get("parent"), path=str(run_dir.resolve()),
                           metrics=info.get("metrics") or {}))
            s.flush()
            s.add(StageEvent(name=name, action="register", from_stage=None, to_stage="candidate",
                             actor=actor or _actor()))
        return self._get(name)

    # -- reading ---------------------------------------------------------------------------------------

    def get(self, name: str) -> ModelRecord:
        self.sync()
        return self._get(name)

    def _get(self, name: str) -> ModelRecord:
        with self._session() as s:
            row = s.get(ModelRow, name)
            if row is None:
                raise RegistryError(f"no model {name!r} in the registry (see `secops-ai models list`)")
            return self._record(s, row, with_history=True)

    def list(self, stage: str | None = None) -> list[ModelRecord]:
        if stage is not None and stage not in STAGES:
            raise RegistryError(f"stage must be one of {', '.join(STAGES)}, not {stage!r}")
        self.sync()
        with self._session() as s:
            q = select(ModelRow).order_by(ModelRow.created_at, ModelRow.name)
            if stage:
                q = q.where(ModelRow.stage == stage)
            return [self._record(s, row) for row in s.scalars(q)]

    def production(self) -> str | None:
        """``"<provider>/<run-id>"`` of the production model, or ``None``. Served for SECOPS_ADAPTER=production."""
        with self._session() as s:
            return s.scalar(select(ModelRow.name).where(ModelRow.stage == "production"))

    def history(self, name: str | None = None) -> list[dict[str, Any]]:
        with self._session() as s:
            q = select(StageEvent).order_by(StageEvent.id)
            if name:
                q = q.where(StageEvent.name == name)
            return [_event_dict(e) for e in s.scalars(q)]

    def gate_result(self, name: str) -> dict[str, Any] | None:
        with self._session() as s:
            return self._latest_gate(s, name)

    # -- gates -----------------------------------------------------------------------------------------

    def record_gate_result(self, name: str, passed: bool, summary: dict[str, Any]) -> None:
        """Store an evaluation gate's verdict; the latest one decides whether ``promote`` is allowed."""
        self.get(name)
        with self._session.begin() as s:
            s.add(GateResult(name=name, passed=bool(passed), summary=summary or {}))

    # -- stage changes ---------------------------------------------------------------------------------

    def promote(self, name: str, *, force: bool = False, reason: str | None = None,
                actor: str | None = None) -> ModelRecord:
        """Make ``name`` the production model; the previous one is archived (kept, and rollback-able).

        Refused unless the latest recorded evaluation gate passed. ``force=True`` overrides that, needs a
        ``reason``, and is recorded (who, when, why) in the registry and the model card.
        """
        actor = actor or _actor()
        record = self.get(name)
        if record.stage == "production":
            raise RegistryError(f"{name} is already in production")
        if record.kind != "adapter":
            raise RegistryError(f"{name} is a {record.kind} model, not an adapter: serve it with "
                                f"SECOPS_BASE_MODEL={record.path}")
        gate = record.gate
        gate_ok = bool(gate and gate["passed"])
        if not gate_ok:
            detail = (gate.get("summary") or {}).get("message") if gate else None
            # evals' verdict (which suite failed and by how much), quoted once
            why = ("no evaluation gate result is recorded for it" if gate is None
                   else f"its latest evaluation gate failed ({gate['ts']}" + (f": {detail})" if detail else ")"))
            if not force:
                raise PromotionRefused(
                    f"promotion of {name} refused: {why}. Run `secops-ai eval gate {name}` and promote once it "
                    "passes, or override with --force --reason '...' (recorded as an audited override).")
            if not (reason and reason.strip()):
                raise PromotionRefused(f"--force on {name} needs --reason: an override is recorded with who, "
                                       "when and why")
        forced = not gate_ok
        # All or nothing: everything that can fail is checked before the stage changes, and the card's
        # audited override is written first and put back if the database commit then fails.
        if not Path(record.path).is_dir():
            raise RegistryError(f"{name}: its folder {record.path} is gone; nothing to serve")
        card_before = None
        if forced:
            card_before = model_card.card_text(record.path)  # raises ModelCardError: no card, no promotion
            model_card.record_override(record.path, {
                "action": "promote", "actor": actor, "reason": reason, "ts": utcnow().isoformat() + "Z",
                "gate": "failed" if gate else "missing"})
        try:
            with self._session.begin() as s:
                self._set_production(s, name, action="promote", actor=actor, reason=reason, forced=forced)
        except BaseException:
            if card_before is not None:
                model_card.restore_card(record.path, card_before)
            raise
        return self.get(name)

    def archive(self, name: str, *, actor: str | None = None, reason: str | None = None) -> ModelRecord:
        """Archive ``name`` on purpose: it leaves production (if it was there) and rollback no longer picks
        it (only ``rollback --to`` does). Its files stay where they are; nothing is deleted."""
        record = self.get(name)
        # a model archived implicitly (replaced by a promotion) can still be archived on purpose, which
        # takes it out of rollback's reach; archiving twice on purpose is an error
        if record.stage == "archived" and record.history and record.history[-1]["action"] == "archive":
            raise RegistryError(f"{name} is already archived")
        with self._session.begin() as s:
            row = s.get(ModelRow, name)
            self._change(s, row, "archived", action="archive", actor=actor or _actor(), reason=reason)
        if record.stage == "production":
            log.warning("%s was in production; no model is in production now", name)
        return self.get(name)

    def rollback(self, *, to: str | None = None, actor: str | None = None, reason: str | None = None) -> str:
        """Put back the model that was in production before the current one; returns its name.

        Precisely: walk the production history (every promote or rollback, newest first) past the current
        model's own entries; the first other model whose folder still exists and that nobody archived
        explicitly (``models archive``) since it left production is the target. A model replaced by a
        promotion was archived *implicitly* ("demote") and stays a rollback target. When no model is in
        production (the current one was archived), the newest earlier production model that qualifies is
        restored. ``to=`` names the target explicitly instead: it must have been in production before and
        its folder must exist (an explicitly archived model may be named this way).
        """
        actor = actor or _actor()
        self.sync()
        with self._session.begin() as s:
            current = s.scalar(select(ModelRow.name).where(ModelRow.stage == "production"))
            history = list(s.scalars(select(StageEvent).order_by(StageEvent.id)))
            ever_production = [e.name for e in history if e.to_stage == "production"]
            last_action = {e.name: e.action for e in history}
            if to is not None:
                row = s.get(ModelRow, to)
                if row is None:
                    raise RegistryError(f"no model {to!r} in the registry (see `secops-ai models list`)")
                if to == current:
                    raise RegistryError(f"{to} is already in production")
                if to not in ever_production:
                    raise RegistryError(f"{to} was never in production; promote it (through its gate) instead")
                if not Path(row.path).is_dir():
                    raise RegistryError(f"{to}: its folder {row.path} is gone")
                previous = to
            else:
                previous = None
                for candidate in reversed(ever_production):
                    if candidate == current:
                        continue
                    row = s.get(ModelRow, candidate)
                    if last_action.get(candidate) == "archive" or row is None or not Path(row.path).is_dir():
                        continue  # retired on purpose, or its files are gone
                    previous = candidate
                    break
                if previous is None:
                    archived = [n for n in dict.fromkeys(reversed(ever_production))
                                if last_action.get(n) == "archive"]
                    hint = (f"; {', '.join(archived)} was archived explicitly: name it with "
                            f"`secops-ai models rollback --to {archived[0]}`") if archived else ""
                    raise RegistryError("nothing to roll back to: no earlier production model that is still "
                                        f"available{hint}")
            why = reason or (f"rollback from {current}" if current else "rollback (no model was in production)")
            self._set_production(s, previous, action="rollback", actor=actor, reason=why, forced=False)
            return previous

    def merge(self, name: str, *, actor: str | None = None) -> ModelRecord:
        """Merge the adapter ``name`` into its base and register the result as a NEW run (the base is untouched)."""
        from secops_ai.registry.merge import merge_adapter

        record = self.get(name)
        if record.kind != "adapter":
            raise RegistryError(f"{name} is a {record.kind} model; only LoRA adapters can be merged")
        run_dir = merge_adapter(record.path, self.workspace.models / record.provider, parent=name)
        return self.register(run_dir, actor=actor)

    # -- internals -------------------------------------------------------------------------------------

    def _set_production(self, s: Session, name: str, *, action: str, actor: str, reason: str | None,
                        forced: bool) -> None:
        for row in s.scalars(select(ModelRow).where(ModelRow.stage == "production")):
            if row.name != name:
                self._change(s, row, "archived", action="demote", actor=actor, reason=f"replaced by {name}")
        self._change(s, s.get(ModelRow, name), "production", action=action, actor=actor, reason=reason,
                     forced=forced)

    @staticmethod
    def _change(s: Session, row: ModelRow, to: str, *, action: str, actor: str, reason: str | None,
                forced: bool = False) -> None:
        s.add(StageEvent(name=row.name, action=action, from_stage=row.stage, to_stage=to, actor=actor,
                         reason=reason, forced=forced))
        row.stage = to
        row.updated_at = utcnow()
        s.flush()

    @staticmethod
    def _latest_gate(s: Session, name: str) -> dict[str, Any] | None:
        gate = s.scalars(select(GateResult).where(GateResult.name == name)
                         .order_by(GateResult.id.desc()).limit(1)).first()
        if gate is None:
            return None
        return {"passed": gate.passed, "summary": gate.summary, "ts": gate.ts.isoformat() + "Z"}

    def _record(self, s: Session, row: ModelRow, *, with_history: bool = False) -> ModelRecord:
        history = []
        if with_history:
            history = [_event_dict(e) for e in s.scalars(
                select(StageEvent).where(StageEvent.name == row.name).order_by(StageEvent.id))]
        return ModelRecord(name=row.name, provider=row.provider, run_id=row.run_id, stage=row.stage, kind=row.kind,
                           path=Path(row.path), training_stage=row.training_stage, base_model=row.base_model,
                           dataset=row.dataset, parent=row.parent, metrics=row.metrics or {},
                           created_at=row.created_at, updated_at=row.updated_at,
                           gate=self._latest_gate(s, row.name), history=history)


def _event_dict(e: StageEvent) -> dict[str, Any]:
    return {"name": e.name, "action": e.action, "from": e.from_stage, "to": e.to_stage, "actor": e.actor,
            "reason": e.reason, "forced": e.forced, "ts": e.ts.isoformat() + "Z"}


def _actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"
