"""Reading order: one case's conditions kept apart, deterministic per reader, counterbalanced across readers."""

from __future__ import annotations

from collections import Counter

from reviewer.studies.definition import CaseDef, ImageRef, ReaderDef, StudyDefinition, Truth
from reviewer.studies.randomise import adjacent_same_case, reader_seed, reading_order


def _defn(n_cases=10, conds=("A", "B"), **rand) -> StudyDefinition:
    cases = [CaseDef(f"c{i}", Truth(), {c: ImageRef(f"i{i}{c}.png") for c in conds}) for i in range(n_cases)]
    d = StudyDefinition("t", list(conds), cases, [ReaderDef(f"R{i}") for i in range(4)])
    for k, v in rand.items():
        setattr(d.randomisation, k, v)
    return d


def test_conditions_of_a_case_in_different_blocks_and_never_adjacent():
    for conds in (("A", "B"), ("A", "B", "C")):
        d = _defn(9, conds)
        for r in range(6):
            order = reading_order(d, f"R{r}", r)
            assert sorted((s.case_id, s.condition) for s in order) == sorted(d.items())
            assert adjacent_same_case(order) == 0
            blocks = {}
            for s in order:
                blocks.setdefault(s.case_id, []).append(s.block)
            assert all(len(set(b)) == len(b) for b in blocks.values())  # never twice in one block
            # blocks are contiguous runs and each mixes conditions
            assert [s.block for s in order] == sorted(s.block for s in order)
            for b in range(len(conds)):
                assert len({s.condition for s in order if s.block == b}) == len(conds)


def test_single_block_still_keeps_conditions_apart():
    d = _defn(6, separate_conditions=False)
    for r in range(4):
        order = reading_order(d, f"R{r}", r)
        assert adjacent_same_case(order) == 0 and {s.block for s in order} == {0}


def test_per_reader_determinism_and_difference():
    d = _defn(12)
    a1, a2 = reading_order(d, "R1", 1), reading_order(d, "R1", 1)
    assert a1 == a2
    assert reading_order(d, "R2", 1) != a1  # another reader's seed shuffles differently
    d.readers[1].seed = 42
    assert reader_seed(d, "R1") == 42
    assert reading_order(d, "R1", 1) == reading_order(d, "X", 1, seed=42)
    d.randomisation.shuffle = False
    plain = reading_order(d, "R1", 0)
    assert [s.case_id for s in plain if s.block == 0] == sorted((s.case_id for s in plain if s.block == 0), key=lambda c: int(c[1:]))


def test_counterbalancing_across_readers():
    d = _defn(8)
    first = {}
    for r in range(4):
        order = reading_order(d, f"R{r}", r)
        for s in order:
            first.setdefault((r, s.case_id), s.condition)
    # each case: half the readers meet A first, half B (Latin-square rotation)
    for c in range(8):
        counts = Counter(first[(r, f"c{c}")] for r in range(4))
        assert counts == Counter({"A": 2, "B": 2})
    # over 2 consecutive readers every (case, condition) occupies both blocks exactly once
    pos = Counter((s.case_id, s.condition, s.block) for r in (0, 1) for s in reading_order(d, f"R{r}", r))
    assert set(pos.values()) == {1} and len(pos) == 8 * 2 * 2
    d.randomisation.counterbalance = False
    firsts = {tuple(s.condition for s in reading_order(d, f"R{r}", r) if s.case_id == "c3") for r in range(4)}
    assert len(firsts) == 1  # without counterbalancing every reader meets the same condition first
