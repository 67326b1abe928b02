"""`near` without trying every combination of occurrences.

A choice of one occurrence per operand (each covering words s..e) is close enough when max(s) -
min(e) - 1 <= within (`rules.reference`). Fix x = min(e) of a choice: every chosen occurrence has e
>= x and s <= x + within + 1, and conversely any choice from the occurrences meeting those two
bounds is close enough. x is always the end of some occurrence, so trying each end as x finds every
occurrence that takes part in some close-enough choice: O(ends * occurrences) instead of the product
of the counts.
"""

from __future__ import annotations

from collections.abc import Sequence

WordRange = tuple[int, int]


def taking_part(
    operands: Sequence[Sequence[WordRange]], within: int, *, first: bool = False
) -> set[tuple[int, int]]:
    """(operand, occurrence) index pairs that take part in some close-enough choice. With `first`,
    stop at the first close-enough choice (enough to know the `near` holds)."""
    reach = within + 1
    out: set[tuple[int, int]] = set()
    for x in sorted({e for occs in operands for _, e in occs}):
        valid = [
            [j for j, (s, e) in enumerate(occs) if e >= x and s <= x + reach] for occs in operands
        ]
        if all(valid):
            out.update((i, j) for i, v in enumerate(valid) for j in v)
            if first:
                break
    return out
