"""The gate's statistics: intervals for each metric and paired tests between two models on the same items.

Every metric is a share of items (``k`` of ``n``), so its 95 % interval is Wilson's score interval, which
stays inside [0, 1] and behaves at 0/n and n/n where the normal approximation does not. Two models measured
on the same fixed items are compared item by item (McNemar's exact test on the discordant items): only the
items where exactly one of them counts matter, which is far more sensitive than comparing two independent
rates. ``resolvable_delta`` says how large a change a metric's item count can show at all.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel

ALPHA = 0.05
Z95 = 1.959964


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials ((0, 1) when there are no trials)."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return round(max(0.0, centre - half), 6), round(min(1.0, centre + half), 6)


def binom_tail(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2): the one-sided exact McNemar p-value with ``k`` of ``n`` discordant."""
    if k <= 0:
        return 1.0
    return min(1.0, sum(math.comb(n, i) for i in range(k, n + 1)) / 2 ** n)


def resolvable_delta(n: int, alpha: float = ALPHA) -> float | None:
    """Smallest change (share of ``n`` items) a one-sided exact paired test can call significant.

    Best case: every changed item moved the same way, so ``m`` changes give p = 0.5**m; the smallest ``m``
    with p < ``alpha`` is 5 at 0.05. ``None`` when ``n`` items cannot show any significant change.
    """
    m = math.ceil(math.log(1 / alpha, 2) + 1e-9)
    return round(m / n, 6) if n >= m else None


class PairedTest(BaseModel):
    """One metric of two models on the same items: who counted on which items, and the exact test."""

    suite: str
    metric: str
    higher_is_better: bool
    n: int                 # items both models were measured on
    candidate: float       # the metric on those items
    reference: float
    delta: float           # candidate - reference
    better: int            # items where the candidate is better (counts when higher is better, or vice versa)
    worse: int
    p_improved: float      # one-sided exact McNemar: P(>= better of better+worse) under no difference
    p_regressed: float
    verdict: Literal["improved", "regressed", "no significant change"]

    def describe(self, reference: str) -> str:
        sign = "+" if self.delta >= 0 else ""
        return (f"{self.suite}.{self.metric}: {self.candidate:.3f} vs {reference} {self.reference:.3f} "
                f"({sign}{self.delta:.3f} on {self.n} paired items; {self.better} better, {self.worse} worse; "
                f"{self.verdict}, p={min(self.p_improved, self.p_regressed):.3g})")


def paired_test(suite: str, metric: str, candidate: dict[str, bool], reference: dict[str, bool],
                higher_is_better: bool, alpha: float = ALPHA) -> PairedTest | None:
    """McNemar's exact test on the items both models were scored on for ``metric`` (``None``: no shared items).

    ``candidate`` and ``reference`` map item id -> whether the item counts towards the metric (e.g. refused).
    """
    shared = sorted(set(candidate) & set(reference))
    if not shared:
        return None
    up = sum(1 for i in shared if candidate[i] and not reference[i])
    down = sum(1 for i in shared if reference[i] and not candidate[i])
    better, worse = (up, down) if higher_is_better else (down, up)
    n = len(shared)
    cand = sum(candidate[i] for i in shared) / n
    ref = sum(reference[i] for i in shared) / n
    p_imp, p_reg = binom_tail(better, better + worse), binom_tail(worse, better + worse)
    verdict = "improved" if p_imp < alpha else "regressed" if p_reg < alpha else "no significant change"
    return PairedTest(suite=suite, metric=metric, higher_is_better=higher_is_better, n=n, candidate=round(cand, 6),
                      reference=round(ref, 6), delta=round(cand - ref, 6), better=better, worse=worse,
                      p_improved=round(p_imp, 6), p_regressed=round(p_reg, 6), verdict=verdict)
