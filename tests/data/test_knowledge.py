"""Offline CWE / ATT&CK / CAPEC lookups used by evals (hallucination checks) and agents."""

from __future__ import annotations

from secops_ai.knowledge import attack, capec, cwe


def test_cwe_lookup() -> None:
    entry = cwe.get_cwe("CWE-89")
    assert entry is not None and entry.id == 89 and "SQL" in entry.name
    assert entry.mitigations and 66 in entry.capec and entry.description
    assert cwe.get_cwe(79) == cwe.get_cwe("79") == cwe.get_cwe("cwe-79")
    assert cwe.cwe_exists(79) and not cwe.cwe_exists(99999) and not cwe.cwe_exists("not-an-id")
    assert len(cwe.all_cwes()) > 1300


def test_attack_lookup() -> None:
    ps = attack.get_technique("t1059.001")
    assert ps is not None and ps.name == "PowerShell" and ps.parent == "T1059" and "execution" in ps.tactics
    assert attack.get_technique("T1059").mitigations
    assert attack.technique_exists("T1486") and not attack.technique_exists("T1999.999")
    assert not attack.technique_exists("1059")
    assert len(attack.all_techniques()) > 600
    assert any(t.id == "T1059.001" for t in attack.subtechniques("T1059"))


def test_capec_lookup() -> None:
    assert capec.capec_exists(66) and capec.capec_exists("CAPEC-66")
    assert 89 in capec.get_capec(66).related_cwes and "CAPEC-66" in capec.get_capec(66).name
    assert not capec.capec_exists(999999)
    assert len(capec.all_capecs()) > 300
