#!/usr/bin/env python3
"""make_stats_fixtures.py — scipy's Wilcoxon signed-rank results on fixed numbers, for
tests/test_stats.c (analysis/stats.c must reproduce them; CI reads the committed fixture and needs
no Python).

Writes tests/fixtures/stats_wilcoxon.txt: '#' comment lines, then one case per line,
    NAME METHOD N STATISTIC PVALUE d_1 ... d_N
with METHOD 'exact' or 'normal' (which branch scipy's method="auto" takes: exact when
n <= 50 with neither ties nor zeros, or n <= 13; otherwise the normal approximation) and every
number as Python's repr (reads back to the same double). Differences are given directly (not as
b - a) so ties are exact. Regenerate with
    python3 -m venv /tmp/venv-stats && /tmp/venv-stats/bin/pip install scipy numpy
    /tmp/venv-stats/bin/python tests/make_stats_fixtures.py
"""
import os

import numpy as np
import scipy
from scipy.stats import wilcoxon


def branch(d):
    n = len(d)
    nz = d[d != 0]
    zeros = n - len(nz)
    ties = len(np.unique(np.abs(nz))) < len(nz)
    if n <= 50 and not ties and zeros == 0:
        return "exact"
    if n <= 13:
        return "exact"
    return "normal"


def main():
    rng = np.random.default_rng(20261207)
    cases = []

    def distinct(n, shift):
        # distinct magnitudes: a random permutation of well separated values, random signs
        mags = (np.arange(1, n + 1) * 0.013 + rng.uniform(0, 0.004, n))
        signs = np.where(rng.uniform(size=n) < 0.5 + shift, 1.0, -1.0)
        return rng.permutation(mags * signs)

    def tied(n, shift, zeros=0):
        # values rounded to 2 decimals in a narrow range: many ties; `zeros` exact zeros
        v = np.round(rng.normal(shift, 0.04, n), 2)
        v[v == 0] = 0.01
        v[:zeros] = 0.0
        return rng.permutation(v)

    cases.append(("n5_exact", distinct(5, 0.0)))
    cases.append(("n5_all_positive", np.array([0.03, 0.01, 0.05, 0.02, 0.04])))
    cases.append(("n5_ties", np.array([0.02, -0.02, 0.03, 0.03, 0.01])))
    cases.append(("n8_exact", distinct(8, 0.2)))
    cases.append(("n8_ties", tied(8, 0.02)))
    cases.append(("n8_zeros", np.array([0.0, 0.0, 0.01, -0.02, 0.03, 0.04, 0.05, 0.06])))
    cases.append(("n12_exact", distinct(12, 0.1)))
    cases.append(("n12_ties_zeros", tied(12, 0.01, zeros=2)))
    cases.append(("n12_all_positive", np.abs(distinct(12, 0.0))))
    cases.append(("n20_exact", distinct(20, 0.25)))
    cases.append(("n20_ties", tied(20, 0.01)))
    cases.append(("n30_exact", distinct(30, 0.15)))
    cases.append(("n30_ties", tied(30, 0.01)))
    cases.append(("n30_ties_zeros", tied(30, 0.015, zeros=3)))
    cases.append(("n50_exact", distinct(50, 0.1)))
    cases.append(("n60_ties", tied(60, 0.008)))
    cases.append(("n60_distinct", distinct(60, 0.1)))
    cases.append(("n5_all_zero", np.zeros(5)))

    lines = [
        "# scipy.stats.wilcoxon(d) (defaults: zero_method='wilcox', correction=False,",
        "# alternative='two-sided', method='auto') on fixed differences; written by",
        "# tests/make_stats_fixtures.py with scipy %s, numpy %s." % (scipy.__version__, np.__version__),
        "# NAME METHOD N STATISTIC PVALUE d_1 ... d_N",
    ]
    for name, d in cases:
        d = np.asarray(d, dtype=np.float64)
        res = wilcoxon(d)
        lines.append(" ".join([name, branch(d), str(len(d)), repr(float(res.statistic)),
                               repr(float(res.pvalue))] + [repr(float(x)) for x in d]))
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "stats_wilcoxon.txt")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", out, len(cases), "cases")


if __name__ == "__main__":
    main()
