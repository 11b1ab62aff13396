"""Small vulnerable Python repositories from a seed, for agent evaluation and agent training.

``generate_repo(dest, seed)`` writes a 1-3 module package with 2-5 bandit findings drawn from common rules
(subprocess ``shell=True``, ``os.system``, ``yaml.load``, ``pickle.loads``, MD5, ``requests`` with
``verify=False``, SQL built by string formatting, ``eval``, ``tempfile.mktemp``, Flask ``debug=True``), safe
helper functions beside them, and (for most seeds) a ``unittest`` suite that exercises the vulnerable functions
in ways a correct fix keeps working. Names, strings, the mix of rules and the layout all come from
``random.Random(f"vulnrepos:{seed}")``: the same seed always gives the same bytes.

**The held-out split.** Seeds ``0 <= seed < HELDOUT_SEEDS_END`` are reserved for evaluation
(``secops-ai agent eval``); training data (trajectories, playbooks) must use seeds from
``TRAINING_SEEDS_START`` up. ``generate_repo(..., purpose="train")`` refuses a held-out seed, so a training
pipeline that asks for the wrong seed fails instead of leaking evaluation repositories.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

HELDOUT_SEEDS_END = 1000  # seeds [0, 1000) are evaluation-only
TRAINING_SEEDS_START = HELDOUT_SEEDS_END
MANIFEST = ".vulnrepo.json"  # outside the scanned code's concerns; lists what was planted (for tests and evals)

Purpose = Literal["eval", "train"]


class HeldOutSeedError(ValueError):
    """A held-out (evaluation) seed was asked for training data, or a training seed for evaluation."""


def is_held_out(seed: int) -> bool:
    return 0 <= seed < HELDOUT_SEEDS_END


def held_out_seeds(n: int, start: int = 0) -> list[int]:
    """The first ``n`` evaluation seeds from ``start``."""
    seeds = list(range(start, start + n))
    if seeds and not all(is_held_out(s) for s in seeds):
        raise HeldOutSeedError(f"held-out seeds are 0..{HELDOUT_SEEDS_END - 1}; {start}+{n} goes past them")
    return seeds


def training_seeds(n: int, start: int = TRAINING_SEEDS_START) -> list[int]:
    """``n`` training seeds (never held out)."""
    if start < TRAINING_SEEDS_START:
        raise HeldOutSeedError(f"training seeds start at {TRAINING_SEEDS_START}; {start} is held out")
    return list(range(start, start + n))


def check_seed(seed: int, purpose: Purpose) -> None:
    if seed < 0:
        raise HeldOutSeedError(f"seed must be >= 0, not {seed}")
    if purpose == "train" and is_held_out(seed):
        raise HeldOutSeedError(f"seed {seed} is held out for evaluation (0..{HELDOUT_SEEDS_END - 1}); "
                               f"training repositories use seeds >= {TRAINING_SEEDS_START}")
    if purpose == "eval" and not is_held_out(seed):
        raise HeldOutSeedError(f"seed {seed} is a training seed; evaluation uses seeds 0..{HELDOUT_SEEDS_END - 1}")


# ------------------------------------------------------------------------------------------ vocabulary
_DOMAINS = ["inventory", "billing", "reports", "tickets", "deploy", "backup", "metrics", "accounts", "catalog",
            "shipping", "payroll", "alerts", "assets", "builds", "notes", "orders", "audit", "sessions"]
_NOUNS = ["item", "user", "order", "host", "job", "record", "entry", "device", "file", "task", "event", "batch"]
_VERBS = ["load", "fetch", "read", "parse", "run", "check", "find", "lookup", "build", "sync", "export", "render"]
_TABLES = ["users", "items", "orders", "hosts", "jobs", "records", "entries", "devices"]
_COLUMNS = ["name", "owner", "label", "kind", "status"]
_COMMANDS = ["echo", "printf '%s\\n'"]


@dataclass
class Planted:
    """One vulnerability written into the repo: the bandit rule expected and where."""

    rule: str
    file: str
    function: str


@dataclass
class _Module:
    name: str
    imports: set[str] = field(default_factory=set)
    blocks: list[str] = field(default_factory=list)
    tests: list[str] = field(default_factory=list)
    test_imports: set[str] = field(default_factory=set)


@dataclass
class RepoSpec:
    """What :func:`generate_repo` wrote."""

    seed: int
    root: Path
    package: str
    planted: list[Planted]
    files: list[str]
    has_tests: bool

    def manifest(self) -> dict[str, object]:
        return {"seed": self.seed, "package": self.package, "has_tests": self.has_tests,
                "planted": [p.__dict__ for p in self.planted], "files": self.files}


def _ident(rng: random.Random, verbs: list[str] | None = None) -> str:
    return f"{rng.choice(verbs or _VERBS)}_{rng.choice(_NOUNS)}"


# Each planter writes one vulnerable function (and maybe a test that a correct fix keeps passing) into a module.
def _shell(rng: random.Random, m: _Module, fn: str) -> str:
    arg, cmd = rng.choice(_NOUNS), rng.choice(_COMMANDS)
    m.imports.add("import subprocess")
    m.blocks.append(f'def {fn}({arg}):\n    """Run a helper command for {arg} and return what it printed."""\n'
                    f'    result = subprocess.run("{cmd} " + {arg}, shell=True, capture_output=True, text=True)\n'
                    f"    return result.stdout\n")
    m.tests.append(f"    def test_{fn}(self):\n        self.assertIn(\"hello\", {m.name}.{fn}(\"hello\"))\n")
    return "B602"


def _os_system(rng: random.Random, m: _Module, fn: str) -> str:
    arg = rng.choice(_NOUNS)
    m.imports.add("import os")
    m.blocks.append(f'def {fn}({arg}):\n    """Touch a marker for {arg}; returns the exit status."""\n'
                    f'    return os.system("true " + {arg})\n')
    m.tests.append(f"    def test_{fn}(self):\n        self.assertEqual({m.name}.{fn}(\"x\") in (0, None), True)\n")
    return "B605"


def _yaml(rng: random.Random, m: _Module, fn: str) -> str:
    arg = rng.choice(["text", "document", "raw", "config_text"])
    loader = rng.choice(["yaml.Loader", "yaml.UnsafeLoader", "yaml.FullLoader"])
    m.imports.add("import yaml")
    m.blocks.append(f'def {fn}({arg}):\n    """Parse a YAML {rng.choice(_NOUNS)} description."""\n'
                    f"    return yaml.load({arg}, Loader={loader})\n")
    key = rng.choice(_COLUMNS)
    m.tests.append(f"    def test_{fn}(self):\n"
                   f"        self.assertEqual({m.name}.{fn}(\"{key}: 3\"), {{\"{key}\": 3}})\n")
    return "B506"


def _pickle(rng: random.Random, m: _Module, fn: str) -> str:
    arg = rng.choice(["blob", "payload", "data", "raw"])
    m.imports.add("import pickle")
    m.blocks.append(f'def {fn}({arg}):\n    """Restore a cached {rng.choice(_NOUNS)} from bytes."""\n'
                    f"    return pickle.loads({arg})\n")
    return "B301"


def _md5(rng: random.Random, m: _Module, fn: str) -> str:
    arg = rng.choice(["value", "token", "name", "secret"])
    m.imports.add("import hashlib")
    m.blocks.append(f'def {fn}({arg}):\n    """A stable fingerprint of a {rng.choice(_NOUNS)} {arg}."""\n'
                    f"    return hashlib.md5({arg}.encode()).hexdigest()\n")
    m.tests.append(f"    def test_{fn}(self):\n        self.assertEqual({m.name}.{fn}(\"a\"), {m.name}.{fn}(\"a\"))\n"
                   f"        self.assertNotEqual({m.name}.{fn}(\"a\"), {m.name}.{fn}(\"b\"))\n")
    return "B324"


def _requests(rng: random.Random, m: _Module, fn: str) -> str:
    arg = rng.choice(["url", "endpoint", "address"])
    verb = rng.choice(["get", "post", "head"])
    m.imports.add("import requests")
    m.blocks.append(f'def {fn}({arg}):\n    """Call the {rng.choice(_DOMAINS)} service."""\n'
                    f"    return requests.{verb}({arg}, verify=False, timeout=10)\n")
    return "B501"


def _sql(rng: random.Random, m: _Module, fn: str) -> str:
    table, col = rng.choice(_TABLES), rng.choice(_COLUMNS)
    arg = col
    style = rng.randrange(4)
    query = f"SELECT id FROM {table} WHERE {col} = "
    expr = [f"\"{query}'%s'\" % {arg}", f"f\"{query}'{{{arg}}}'\"", f"\"{query}'{{}}'\".format({arg})",
            f"\"{query}'\" + {arg} + \"'\""][style]
    m.blocks.append(f'def {fn}(conn, {arg}):\n    """Ids of the {table} with this {col}."""\n'
                    f"    rows = conn.execute({expr}).fetchall()\n    return [r[0] for r in rows]\n")
    m.test_imports.add("import sqlite3")
    m.tests.append(f"    def test_{fn}(self):\n        conn = sqlite3.connect(\":memory:\")\n"
                   f"        conn.execute(\"CREATE TABLE {table} (id INTEGER, {col} TEXT)\")\n"
                   f"        conn.execute(\"INSERT INTO {table} VALUES (1, 'a'), (2, 'b')\")\n"
                   f"        self.assertEqual({m.name}.{fn}(conn, \"b\"), [2])\n")
    return "B608"


def _eval(rng: random.Random, m: _Module, fn: str) -> str:
    arg = rng.choice(["expr", "literal", "text"])
    m.blocks.append(f'def {fn}({arg}):\n    """Read a Python literal ({rng.choice(_NOUNS)} settings)."""\n'
                    f"    return eval({arg})\n")
    m.tests.append(f"    def test_{fn}(self):\n        self.assertEqual({m.name}.{fn}(\"[1, 2]\"), [1, 2])\n")
    return "B307"


def _mktemp(rng: random.Random, m: _Module, fn: str) -> str:
    m.imports.add("import tempfile")
    suffix = rng.choice([".tmp", ".json", ".csv", ".log"])
    m.blocks.append(f'def {fn}():\n    """A scratch path for {rng.choice(_NOUNS)} exports."""\n'
                    f"    return tempfile.mktemp(suffix=\"{suffix}\")\n")
    m.tests.append(f"    def test_{fn}(self):\n        self.assertTrue(str({m.name}.{fn}()).endswith(\"{suffix}\"))\n")
    return "B306"


_PLANTERS = {"B602": _shell, "B605": _os_system, "B506": _yaml, "B301": _pickle, "B324": _md5, "B501": _requests,
             "B608": _sql, "B307": _eval, "B306": _mktemp}
RULES: tuple[str, ...] = (*_PLANTERS, "B201")


_IMPORT_FINDINGS = {"import subprocess": "B404", "import pickle": "B403"}
_NEEDS_IMPORT = {"B602": "import subprocess", "B301": "import pickle"}


def _count(plan: list[tuple[str, str]]) -> int:
    """Bandit findings of a plan: one per rule, plus one per module for subprocess/pickle imports."""
    imports = {(_NEEDS_IMPORT[r], m) for r, m in plan if r in _NEEDS_IMPORT}
    return len(plan) + len(imports)


def _helper(rng: random.Random, m: _Module, used: set[str]) -> None:
    """A safe function beside the vulnerable ones (so a fix must leave the rest of the file alone)."""
    fn = _unique(rng, used, ["normalise", "clean", "format", "slug"])
    m.blocks.append(f'def {fn}(value):\n    """Lower-case, trimmed, spaces as dashes."""\n'
                    f'    return "-".join(str(value).strip().lower().split())\n')
    m.tests.append(f"    def test_{fn}(self):\n        self.assertEqual({m.name}.{fn}(\" A b \"), \"a-b\")\n")


def _unique(rng: random.Random, used: set[str], verbs: list[str] | None = None) -> str:
    for _ in range(100):
        name = _ident(rng, verbs)
        if name not in used:
            used.add(name)
            return name
    raise RuntimeError("ran out of identifiers")  # unreachable with the vocabulary above


def generate_repo(dest: Path, seed: int, *, purpose: Purpose = "eval") -> RepoSpec:
    """Write the repository of ``seed`` into ``dest`` (created; must not exist or be empty)."""
    check_seed(seed, purpose)
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty")
    rng = random.Random(f"vulnrepos:{seed}")
    package = rng.choice(_DOMAINS) + rng.choice(["", "_tool", "_svc", "kit"])
    target = rng.randint(2, 5)  # bandit findings in the repo, counting what the imports add
    names = rng.sample(["core", "utils", "storage", "client", "jobs", "io_helpers"], rng.randint(1, 3))
    with_flask = target >= 3 and rng.random() < 0.25  # a Flask app with debug=True: one more finding, own file
    plan: list[tuple[str, str]] = []  # (rule, module)
    for rule in rng.sample(list(_PLANTERS), len(_PLANTERS)):
        module = rng.choice(names)
        trial = [*plan, (rule, module)]
        if _count(trial) + with_flask <= target:
            plan = trial
        if _count(plan) + with_flask == target:
            break
    modules = {n: _Module(n) for n in names}
    used: set[str] = set()
    planted: list[Planted] = []
    for rule, name in plan:
        fn = _unique(rng, used)
        _PLANTERS[rule](rng, modules[name], fn)
        planted.append(Planted(rule, f"{package}/{name}.py", fn))
    for m in modules.values():  # bandit also reports these imports themselves (low)
        for imp, rule in _IMPORT_FINDINGS.items():
            if imp in m.imports:
                planted.append(Planted(rule, f"{package}/{m.name}.py", imp))
    modules_list = list(modules.values())
    for m in modules_list:
        if rng.random() < 0.8 or not m.blocks:
            _helper(rng, m, used)
    has_tests = rng.random() < 0.7

    dest.mkdir(parents=True, exist_ok=True)
    pkg = dest / package
    pkg.mkdir()
    files: list[str] = []

    def write(rel: str, text: str) -> None:
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        files.append(rel)

    write(f"{package}/__init__.py", f'"""{package}: internal {package.split("_")[0]} tooling."""\n')
    for m in modules_list:
        rng.shuffle(m.blocks)
        head = "\n".join(sorted(m.imports))
        body = "\n\n".join(m.blocks)
        write(f"{package}/{m.name}.py", f'"""{m.name.replace("_", " ").title()} of {package}."""\n'
                                        + (f"{head}\n" if head else "") + "\n\n" + body)
    if with_flask:
        port = rng.choice([5000, 8000, 8080, 8443])
        write(f"{package}/server.py",
              f'"""HTTP front end of {package}."""\nfrom flask import Flask\n\napp = Flask(__name__)\n\n\n'
              f'@app.route("/health")\ndef health():\n    return "ok"\n\n\n'
              f'if __name__ == "__main__":\n    app.run(port={port}, debug=True)\n')
        planted.append(Planted("B201", f"{package}/server.py", "__main__"))
    if has_tests:
        for m in modules_list:
            if not m.tests:
                continue
            imports = "\n".join(["import unittest", *sorted(m.test_imports)])
            body = "\n".join(m.tests)
            write(f"tests/test_{m.name}.py",
                  f"{imports}\n\nfrom {package} import {m.name}\n\n\nclass Test{m.name.title().replace('_', '')}"
                  f"(unittest.TestCase):\n{body}\n\nif __name__ == \"__main__\":\n    unittest.main()\n")
        write("tests/__init__.py", "")
    write("README.md", f"# {package}\n\nInternal tooling. Tests: `python -m unittest discover -s tests -t .`\n")
    spec = RepoSpec(seed, dest, package, planted, sorted(files), has_tests and any(m.tests for m in modules_list))
    (dest / MANIFEST).write_text(json.dumps(spec.manifest(), indent=2) + "\n")
    return spec


TEST_COMMAND = ["python", "-m", "unittest", "discover", "-s", "tests", "-t", "."]
