"""The compiled top-k merges against a sort of every (reader, key) pair."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sim.kernels import UNCACHED_WARNING
from sim.topk import decode_keys, merge_bank_keys, merge_bank_lists, merge_level_keys


def _rights(rng: np.random.Generator, n_readers: int, n_banks: int):
    per_reader = rng.integers(0, 30, n_readers)
    per_reader[::7] = 0  # some readers read nothing
    indptr = np.zeros(n_readers + 1, dtype=np.int64)
    np.cumsum(per_reader, out=indptr[1:])
    banks = np.concatenate(
        [rng.choice(n_banks, size=n, replace=False) for n in per_reader.tolist()]
    ).astype(np.int32)
    return indptr, banks


def _sorted_pairs(indptr, rights, keys_of_bank, k):
    """Reference: every (reader, key) pair, sorted; each reader's first k (CSR)."""
    out_indptr, out_keys, out_readers = [0], [], []
    for reader in range(len(indptr) - 1):
        keys = sorted(
            key
            for bank in rights[indptr[reader] : indptr[reader + 1]]
            for key in keys_of_bank[bank]
        )[:k]
        out_keys += keys
        out_readers += [reader] * len(keys)
        out_indptr.append(len(out_keys))
    return out_indptr, out_keys, out_readers


def _outputs(n_readers: int, k: int):
    cap = n_readers * k
    return (
        np.empty(cap, dtype=np.int64),
        np.empty(cap, dtype=np.int32),
        np.empty(n_readers + 1, dtype=np.int64),
    )


@pytest.mark.parametrize("k", [1, 7, 8, 9, 40])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_merge_bank_keys_keeps_each_readers_smallest_keys(k, dtype):
    rng = np.random.default_rng(k)
    n_readers, n_banks = 300, 500
    indptr, rights = _rights(rng, n_readers, n_banks)
    bank_key = rng.permutation(1 << 20)[:n_banks].astype(dtype)  # unique keys
    bank_key[rng.random(n_banks) < 0.3] = -1  # empty banks
    keys, readers, out_indptr = _outputs(n_readers, k)
    filled = merge_bank_keys(indptr, rights, bank_key, k, keys, readers, out_indptr)
    of_bank = [[int(key)] if key >= 0 else [] for key in bank_key.tolist()]
    expected = _sorted_pairs(indptr, rights, of_bank, k)
    assert out_indptr.tolist() == expected[0]
    assert filled == expected[0][-1]
    assert keys[:filled].tolist() == expected[1]
    assert readers[:filled].tolist() == expected[2]


@pytest.mark.parametrize("k", [1, 3, 8, 12])
def test_merge_bank_lists_keeps_each_readers_smallest_keys(k):
    rng = np.random.default_rng(100 + k)
    n_readers, n_banks = 200, 400
    indptr, rights = _rights(rng, n_readers, n_banks)
    count = rng.integers(0, 2 * k + 2, n_banks)  # up to the bank's own top k
    count = np.minimum(count, k)
    start = np.cumsum(count) - count
    pool = rng.permutation(1 << 20)[: int(count.sum())].astype(np.int64)
    of_bank = [sorted(pool[s : s + c].tolist()) for s, c in zip(start, count, strict=True)]
    bank_keys = np.array([key for keys in of_bank for key in keys], dtype=np.int64)
    keys, readers, out_indptr = _outputs(n_readers, k)
    filled = merge_bank_lists(indptr, rights, start, count, bank_keys, k, keys, readers, out_indptr)
    expected = _sorted_pairs(indptr, rights, of_bank, k)
    assert out_indptr.tolist() == expected[0]
    assert keys[:filled].tolist() == expected[1]
    assert readers[:filled].tolist() == expected[2]


def test_output_arrays_too_short_are_an_error_not_a_write_past_them():
    rng = np.random.default_rng(7)
    indptr, rights = _rights(rng, 50, 80)
    bank_key = rng.permutation(1000)[:80].astype(np.int64)
    keys, readers, out_indptr = _outputs(50, 4)
    for k in (4, 9):  # the eight-key network, and the general merge
        with pytest.raises(IndexError, match="shorter than the result"):
            merge_bank_keys(indptr, rights, bank_key, k, keys[:10], readers, out_indptr)
    with pytest.raises(ValueError, match="indptr needs 51 entries"):
        merge_bank_keys(indptr, rights, bank_key, 4, keys, readers, out_indptr[:-1])


@pytest.mark.parametrize("mapped", [False, True])
def test_decode_keys_reads_rank_and_entry_ignoring_higher_bits(mapped):
    """(rank << id_bits) | low decodes to the entry top - low (through the map when one
    is given) and the rank's score; a reader id combined above the rank is ignored, and
    decoding in place (ids is keys) reads each key before writing its slot."""
    rng = np.random.default_rng(5)
    id_bits, top, by_rank = 9, 500, np.array([1.5, 1.0, 0.25, 0.0, -2.0])
    rank = rng.integers(0, 5, 1000)
    low = rng.integers(0, top + 1, 1000)
    rank_bits = 3  # (5 ranks)
    keys = (rng.integers(0, 50, 1000) << (id_bits + rank_bits)) | (rank << id_bits) | low
    entry_ids = rng.permutation(top + 1) + 10_000 if mapped else None
    expected_ids = (top - low) if entry_ids is None else entry_ids[top - low]
    scores = np.empty(1000)
    decode_keys(keys, by_rank, id_bits, top, keys, scores, entry_ids)
    assert keys.tolist() == expected_ids.tolist()
    assert scores.tolist() == by_rank[rank].tolist()
    with pytest.raises(ValueError, match="as long as keys"):
        decode_keys(keys, by_rank, id_bits, top, keys[:-1], scores, entry_ids)


def test_a_read_right_to_a_bank_beyond_the_tables_is_an_error_not_a_read_past_them():
    """The kernels run without bounds checks: a read right naming a bank the tables do
    not hold (a layout and a store of different bank counts) is refused, not read."""
    indptr = np.array([0, 2], dtype=np.int64)
    rights = np.array([0, 1 << 30], dtype=np.int32)
    keys, readers, out_indptr = _outputs(1, 8)
    for k in (4, 9):
        with pytest.raises(IndexError, match="bank"):
            merge_bank_keys(
                indptr, rights, np.array([3], dtype=np.int64), k, keys, readers, out_indptr
            )
        with pytest.raises(IndexError, match="bank"):
            merge_bank_lists(
                indptr,
                rights,
                np.zeros(1, np.int64),
                np.ones(1, np.int64),
                np.array([3], dtype=np.int64),
                k,
                keys,
                readers,
                out_indptr,
            )
        for n_items in (1, 2):  # (one entry per bank: packed; several: grouped)
            with pytest.raises(IndexError, match="bank"):
                merge_level_keys(
                    indptr,
                    rights,
                    np.zeros(n_items, np.int64),
                    np.array([n_items]),
                    np.zeros(n_items, np.int64),
                    np.zeros(n_items, np.int64),
                    np.zeros(1, np.int64),
                    np.zeros(1, np.int64),
                    np.zeros((1, 1), np.int64),
                    k,
                    keys,
                    readers,
                    out_indptr,
                )


def test_a_query_table_shorter_than_the_readers_is_an_error_not_a_read_past_it():
    """merge_level_keys reads each reader's row offset: fewer offsets than readers (a
    query list shorter than the agents) is refused before any kernel reads them."""
    indptr = np.array([0, 1, 2, 3], dtype=np.int64)
    rights = np.array([0, 0, 0], dtype=np.int32)
    keys, readers, out_indptr = _outputs(3, 8)
    with pytest.raises(ValueError, match="query offset"):
        merge_level_keys(
            indptr,
            rights,
            np.zeros(1, np.int64),
            np.ones(1, np.int64),
            np.zeros(1, np.int64),
            np.zeros(1, np.int64),
            np.zeros(1, np.int64),
            np.zeros(1, np.int64),
            np.zeros((1, 1), np.int64),
            8,
            keys,
            readers,
            out_indptr,
        )


def _level_merge(bank_of: list[int], bank_count: list[int], k: int = 8) -> list[int]:
    """merge_level_keys for one reader of every bank, all items of one score level."""
    n_banks, n_items = len(bank_count), len(bank_of)
    keys, readers, out_indptr = _outputs(1, k)
    filled = merge_level_keys(
        np.array([0, n_banks], dtype=np.int64),
        np.arange(n_banks, dtype=np.int32),
        np.array(bank_of, dtype=np.int64),
        np.array(bank_count, dtype=np.int64),
        np.zeros(n_items, np.int64),
        np.zeros(n_items, np.int64),
        np.zeros(1, np.int64),
        np.zeros(1, np.int64),
        np.zeros((1, 1), np.int64),
        k,
        keys,
        readers,
        out_indptr,
    )
    return keys[:filled].tolist()


def test_level_merge_takes_the_bank_counts_and_refuses_counts_that_do_not_fit():
    """merge_level_keys takes each bank's item count from the caller (the store keeps
    it) instead of counting bank_of again; counts that do not fit bank_of are refused,
    never used to write or read past the grouped items (the kernels have no bounds
    checks)."""
    # Three items in banks 1, 0, 1: keys n_items - 1 - item, newest (highest) first.
    assert _level_merge([1, 0, 1], [1, 2]) == [0, 1, 2]
    assert _level_merge([1, 2, 0], [1, 1, 1]) == [0, 1, 2]  # (one per bank: packed)
    with pytest.raises(ValueError, match=r"bank counts totalling 2 \(min 1\) for 3 items"):
        _level_merge([1, 0, 1], [1, 1])
    with pytest.raises(ValueError, match=r"totalling 3 \(min -1\)"):
        _level_merge([1, 0, 1], [-1, 4])
    with pytest.raises(IndexError, match="more items than its count"):
        _level_merge([1, 0, 1], [2, 1])


def test_the_kernels_load_where_numba_has_nowhere_to_cache_them(tmp_path):
    """A read-only install with no writable cache directory: numba refuses cache=True
    functions as they are decorated, so the modules would not import; the kernels are
    then compiled in the process instead, with the same results, and the process is told
    so once (on stderr: the logger's last-resort handler), with the fix."""
    package = tmp_path / "sim"
    shutil.copytree(
        Path(__file__).parents[2] / "sim", package, ignore=shutil.ignore_patterns("__pycache__")
    )
    (package / "__pycache__").write_text("")  # (a file: numba's in-tree cache cannot be made)
    blocked = tmp_path / "blocked"
    blocked.write_text("")  # (a file: no cache directory can be made under it)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "PYTHON"))}
    env.update(
        HOME=str(blocked / "home"),
        XDG_CACHE_HOME=str(blocked / "cache"),
        PYTHONPATH=str(tmp_path),
        PYTHONDONTWRITEBYTECODE="1",
    )
    code = (
        "import numpy as np\n"
        "from sim.levels import distinct_ranks\n"
        "from sim.topk import merge_bank_keys\n"
        "keys, readers, indptr = np.empty(4, np.int64), np.empty(4, np.int32), "
        "np.empty(3, np.int64)\n"
        "n = merge_bank_keys(np.array([0, 2, 3]), np.array([0, 1, 1], np.int32), "
        "np.array([5, 2]), 2, keys, readers, indptr)\n"
        "print(keys[:n].tolist(), readers[:n].tolist(), indptr.tolist())\n"
        "print(distinct_ranks(np.array([2.0, 1.0, 2.0]))[1].tolist())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[2, 5, 2] [0, 0, 1] [0, 2, 3]", "[1, 0, 1]"]
    # Every kernel of both modules fell back; one warning, naming the fix.
    assert done.stderr.count(UNCACHED_WARNING) == 1, done.stderr
    assert done.stderr.splitlines() == [UNCACHED_WARNING]
    assert "NUMBA_CACHE_DIR" in UNCACHED_WARNING
