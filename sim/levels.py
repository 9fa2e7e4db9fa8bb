"""The distinct values of a float array and each element's rank among them, in one pass.

Retrieval ranks scores by their level (the rank of a score among the step's distinct
scores). The distinct scores are few (a score is made of a few recency ages and
importances), so instead of sorting every score (n log n, and several passes over the
array) a compiled pass puts each score's bit pattern in a small hash set, the few
distinct values are sorted, and a second pass reads each score's rank off the set. Both
passes read the scores once, in order.

When the distinct values are more than the set holds, the answer is None and the caller
sorts instead. -0.0 counts as 0.0 (they compare equal); NaN is not supported.
"""

from __future__ import annotations

import numpy as np

from sim.kernels import kernel


def distinct_ranks(values: np.ndarray, limit: int = 4096) -> tuple[np.ndarray, np.ndarray] | None:
    """The distinct values, ascending, and the rank of each value among them.

    Args:
        values: Float64 values (no NaN).
        limit: Most distinct values handled; with more, None.

    Returns:
        ``(distinct, rank)``: ``distinct`` ascending (float64), ``rank`` int64 with
        ``distinct[rank[i]] == values[i]``; or None when there are more than ``limit``
        distinct values.
    """
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.int64)
    table_bits = max(int(2 * limit - 1).bit_length(), 1)
    rank = np.empty(len(bits), dtype=np.int64)
    found = np.empty(limit, dtype=np.int64)
    n_distinct = _first_seen(bits, table_bits, found, rank)
    if n_distinct > limit:
        return None
    distinct = found[:n_distinct].view(np.float64)
    order = np.argsort(distinct, kind="stable")
    rank_of_first = np.empty(n_distinct, dtype=np.int64)
    rank_of_first[order] = np.arange(n_distinct, dtype=np.int64)
    return distinct[order], rank_of_first.take(rank)


#: Fibonacci hashing's multiplier (2**64 / golden ratio).
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)

#: The bit pattern of -0.0 (int64), counted as 0.0.
_NEGATIVE_ZERO = np.int64(-(2**63))


@kernel()
def _first_seen(bits, table_bits, found, rank):  # pragma: no cover
    """Number each distinct bit pattern in order of first appearance.

    Fills ``found`` (the patterns, in that order) and ``rank`` (each element's number);
    returns the number of distinct patterns, or ``len(found) + 1`` as soon as there are
    more than ``found`` holds (``rank`` is then incomplete).
    """
    size = 1 << table_bits
    slots = np.full(size, -1, dtype=np.int64)
    shift = np.uint64(64 - table_bits)
    limit = len(found)
    n_distinct = 0
    for i in range(len(bits)):
        pattern = bits[i]
        if pattern == _NEGATIVE_ZERO:
            pattern = 0
        at = np.int64((np.uint64(pattern) * _GOLDEN) >> shift)
        while True:
            number = slots[at]
            if number < 0:
                if n_distinct == limit:
                    return limit + 1
                slots[at] = n_distinct
                found[n_distinct] = pattern
                rank[i] = n_distinct
                n_distinct += 1
                break
            if found[number] == pattern:
                rank[i] = number
                break
            at = (at + 1) & (size - 1)
    return n_distinct
