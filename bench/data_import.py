"""Benchmark: SARIF import + triage generation throughput, and peak memory as the report grows.

    .venv/bin/python bench/data_import.py [--sizes 10000 50000 100000]

For each size a synthetic SARIF 2.1 report (bandit-like rules, one result per finding, distinct files,
lines and snippets) is written, then each measurement runs in a fresh subprocess so ``ru_maxrss`` (peak
resident memory) belongs to that step alone:

* baseline   ``json.load`` of the whole report (what a non-streaming importer does first)
* import     ``secops-ai data import sarif`` path: ijson stream → validate → records.jsonl
* generate   ``finding-triage`` over the imported dataset (chat records, streaming)

Peak memory is reported as growth over the process's resident size just before the step.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RULES = [
    ("B602", "subprocess_popen_with_shell_equals_true", 78, "subprocess call with shell=True identified."),
    ("B608", "hardcoded_sql_expressions", 89, "Possible SQL injection vector through string-based query."),
    ("B301", "blacklist", 502, "Pickle and modules that wrap it can be unsafe when used to deserialize."),
    ("B324", "hashlib", 327, "Use of weak MD5 hash for security."),
    ("B105", "hardcoded_password_string", 259, "Possible hardcoded password."),
    ("B307", "blacklist", 78, "Use of possibly insecure function - consider using safer ast.literal_eval."),
    ("B501", "request_with_no_cert_validation", 295, "Call to requests with verify=False."),
    ("B506", "yaml_load", 20, "Use of unsafe yaml load."),
    ("B306", "blacklist", 377, "Use of insecure and deprecated function (mktemp)."),
    ("B103", "set_bad_file_permissions", 732, "Chmod setting a permissive mask 0o777 on file."),
]


def write_sarif(path: Path, n: int) -> None:
    """Stream a SARIF file with ``n`` results to disk (never held in memory)."""
    rules = [{"id": rid, "name": name, "properties": {"tags": ["security", f"external/cwe/cwe-{cwe}"]},
              "helpUri": f"https://bandit.readthedocs.io/en/latest/plugins/{rid.lower()}.html"}
             for rid, name, cwe, _ in RULES]
    with path.open("w", encoding="utf-8") as fh:
        fh.write('{"version": "2.1.0", "$schema": "https://json.schemastore.org/sarif-2.1.0.json", "runs": [{')
        fh.write('"tool": {"driver": {"name": "Bandit", "version": "1.9.4", "rules": ')
        fh.write(json.dumps(rules))
        fh.write('}}, "results": [')
        for i in range(n):
            k = i % len(RULES)
            rid, _name, _cwe, msg = RULES[k]
            res = {"ruleId": rid, "ruleIndex": k, "level": "warning", "message": {"text": msg},
                   "locations": [{"physicalLocation": {
                       "artifactLocation": {"uri": f"services/svc{i // 500}/module_{i % 500}.py"},
                       "region": {"startLine": 10 + i % 300, "endLine": 10 + i % 300,
                                  "snippet": {"text": f"    value_{i} = call(arg_{i}, shell=True)\n"}}}}],
                   "properties": {"issue_severity": ("LOW", "MEDIUM", "HIGH")[i % 3], "issue_confidence": "HIGH"}}
            if i:
                fh.write(",")
            fh.write(json.dumps(res))
        fh.write("]}]}")


def _rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(step: str, sarif: str, home: str) -> None:
    """One measurement in this (fresh) process; prints a JSON line."""
    from secops_ai.config import Workspace
    from secops_ai.data.generators import generate
    from secops_ai.data.importers import import_dataset
    from secops_ai.data.store import DatasetStore

    store = DatasetStore(Workspace(home))
    if step == "prep":  # the CWE catalog the triage generator reads, imported in its own process
        import_dataset(store, "cwe", provider="bench")
        print(json.dumps({"step": step}))
        return
    before = _rss_kb()
    t0 = time.perf_counter()
    if step == "baseline":
        data = json.loads(Path(sarif).read_text(encoding="utf-8"))
        n = len(data["runs"][0]["results"])
    elif step == "import":
        n = import_dataset(store, "sarif", sarif, provider="bench", name="findings").record_count
    else:
        n = generate(store, "finding-triage", ["bench/findings", "bench/cwe-catalog@1"], provider="bench",
                     name="triage").record_count
    dt = time.perf_counter() - t0
    print(json.dumps({"step": step, "n": n, "seconds": dt, "peak_growth_mb": (_rss_kb() - before) / 1024}))


def run_step(step: str, sarif: Path, home: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", step, str(sarif), str(home)], check=True,
                         capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        for n in args.sizes:
            sarif = Path(tmp) / f"findings-{n}.sarif"
            write_sarif(sarif, n)
            home = Path(tmp) / f"home-{n}"
            base = run_step("baseline", sarif, home)
            imp = run_step("import", sarif, home)
            run_step("prep", sarif, home)
            gen = run_step("generate", sarif, home)
            rows.append((n, sarif.stat().st_size / 2**20, base, imp, gen))
    print(f"{'findings':>9} {'SARIF MB':>9} | {'json.load MB':>12} | {'import rec/s':>12} {'import MB':>9} | "
          f"{'generate rec/s':>14} {'generate MB':>11} | {'mem vs json.load':>16}")
    for n, mb, base, imp, gen in rows:
        print(f"{n:>9} {mb:>9.1f} | {base['peak_growth_mb']:>12.1f} | {imp['n'] / imp['seconds']:>12.0f} "
              f"{imp['peak_growth_mb']:>9.1f} | {gen['n'] / gen['seconds']:>14.0f} {gen['peak_growth_mb']:>11.1f} | "
              f"{imp['peak_growth_mb'] / max(base['peak_growth_mb'], 0.1):>15.2f}x")


if __name__ == "__main__":
    main()
