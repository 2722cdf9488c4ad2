"""Which sentence each word error belongs to: the word-level Levenshtein alignment, backtracked.

The speech check transcribes a few sentences at once (Whisper's cost is mostly a fixed window)
and must still judge each sentence: a slot whose speech lost one sentence has a modest WER over the
slot, but that sentence's own WER is 1. The reference words carry their sentence's label; a
substitution or deletion counts against the reference word's sentence, an insertion against the
sentence of the reference word before it (the first one's, at the start).
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence


def errors_by_label(reference: Sequence[str], labels: Sequence[int], hypothesis: Sequence[str]) -> Counter:
    """{label: errors} over one optimal alignment (ties broken towards matches, then substitutions)."""
    n, m = len(reference), len(hypothesis)
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} reference words")
    # cost[i][j]: edit distance of reference[:i] and hypothesis[:j]
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for j in range(m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        row, above = cost[i], cost[i - 1]
        row[0] = i
        for j in range(1, m + 1):
            row[j] = min(above[j] + 1, row[j - 1] + 1, above[j - 1] + (reference[i - 1] != hypothesis[j - 1]))
    errors: Counter = Counter()
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i][j] == cost[i - 1][j - 1] + (reference[i - 1] != hypothesis[j - 1]):
            if reference[i - 1] != hypothesis[j - 1]:
                errors[labels[i - 1]] += 1  # substitution
            i, j = i - 1, j - 1
        elif i > 0 and cost[i][j] == cost[i - 1][j] + 1:
            errors[labels[i - 1]] += 1  # deletion: the reference word was not heard
            i -= 1
        else:
            errors[labels[max(i - 1, 0)] if n else 0] += 1  # insertion: heard, never said
            j -= 1
    return errors
