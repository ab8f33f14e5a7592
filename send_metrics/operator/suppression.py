"""Small-cell suppression: which numbers of the report are hidden so that none drawn from fewer
than k developers can be read, or worked out from the totals shown beside it.

The rule (README, "how the thresholds protect developers"):

1. Primary: a cell whose rows come from fewer than k distinct developers is hidden, all its
   numbers (developers, runs, failures, percentiles) together.
2. Complementary, for every group of cells that add up to a total (the commands of a week to
   the week, the weeks to the period, the values of a breakdown to the period):
   - total shown: if any cell is hidden, at least one hidden cell must have k or more
     developers; else the smallest shown cell (fewest runs) is hidden too. So a group never
     hides exactly one cell, and what subtraction gives back (the hidden cells together) is a
     number drawn from at least k developers;
   - total hidden: at least one of its cells is hidden (else their sum gives the total back).

Run and failure counts add up; distinct developers do not (a developer runs many commands),
which only gives bounds, and with two or more hidden cells, none of them is pinned by a bound.
The groups nest (command-weeks in weeks in the period; each breakdown beside), so each sum
holds one level: with every sum holding no hidden value or at least two, no hidden value is
determined by the published ones (the property test in tests/test_report.py checks this by
linear algebra on published reports).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import NamedTuple


class Member(NamedTuple):
    """One cell of a group: its key, its distinct developers and its runs."""

    key: Hashable
    developers: int
    runs: int


def primary(developers: int, k: int) -> bool:
    """A cell drawn from fewer than k distinct developers is hidden."""
    return developers < k


def protect(members: Sequence[Member], k: int, total_hidden: bool) -> set[Hashable]:
    """The keys of the group's cells to hide: the primary ones, and the complement that keeps
    any of them from being recovered from the group's total (see the module's rule)."""
    hidden = {m.key for m in members if primary(m.developers, k)}
    shown = sorted(
        (m for m in members if m.key not in hidden),
        key=lambda m: (m.runs, m.developers, str(m.key)),
    )
    if total_hidden:
        needed = bool(members) and not hidden
    else:
        needed = bool(hidden) and not any(m.developers >= k for m in members if m.key in hidden)
    if needed and shown:
        hidden.add(shown[0].key)
    return hidden
