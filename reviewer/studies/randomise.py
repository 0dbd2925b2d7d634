"""Per-reader reading order: blocked by condition, shuffled per reader, counterbalanced across readers.

With C conditions the order has C reading blocks. Each case appears at most once per block, so one case's
conditions are never in the same block; within a block the items are shuffled with the reader's seed, and block
boundaries are repaired so the same case is never adjacent. Condition ``j`` of case ``c`` goes to block
``(j + c + r) mod C`` where ``r`` is the reader's index (its place in the study's reader list): every block mixes
all conditions, and readers ``r`` and ``r + 1`` meet each case's conditions in rotated order (a Latin square), so
over C readers every condition of every case is read once in every block (counterbalancing).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from reviewer.studies.definition import StudyDefinition


@dataclass(frozen=True)
class OrderSlot:
    case_id: str
    condition: str
    block: int


def reader_seed(definition: StudyDefinition, reader_id: str) -> int:
    """The reader's explicit seed, else one derived stably from the study seed and the reader id."""
    for r in definition.readers:
        if r.id == reader_id and r.seed is not None:
            return int(r.seed)
    h = hashlib.sha256(f"{definition.randomisation.seed}:{reader_id}".encode()).digest()
    return int.from_bytes(h[:8], "little") >> 1


def reading_order(definition: StudyDefinition, reader_id: str, reader_index: int,
                  seed: int | None = None) -> list[OrderSlot]:
    """The order in which reader ``reader_id`` (``reader_index``-th reader of the study) reads every item."""
    rnd = definition.randomisation
    rng = np.random.default_rng(reader_seed(definition, reader_id) if seed is None else seed)
    conds = definition.conditions
    n_blocks = len(conds) if rnd.separate_conditions else 1
    shift = reader_index if rnd.counterbalance else 0
    blocks: list[list[OrderSlot]] = [[] for _ in range(n_blocks)]
    for ci, case in enumerate(definition.cases):
        present = [c for c in conds if c in case.images]
        for j, cond in enumerate(present):
            b = (conds.index(cond) + ci + shift) % n_blocks if n_blocks > 1 else 0
            blocks[b].append(OrderSlot(case.id, cond, b))
    if n_blocks == 1 and rnd.counterbalance and len(conds) > 1:
        # one block: still rotate which condition of a case comes first across readers
        blocks[0] = _rotate_pairs(blocks[0], shift, conds)
    for b in range(n_blocks):
        if rnd.shuffle:
            perm = rng.permutation(len(blocks[b]))
            blocks[b] = [blocks[b][i] for i in perm]
        if n_blocks == 1:
            blocks[b] = _separate_adjacent(blocks[b], rng)
    order: list[OrderSlot] = []
    for blk in blocks:
        if order and blk and blk[0].case_id == order[-1].case_id:
            # a case appears once per block, so swapping the block's head with any other item is safe inside it
            for i in range(1, len(blk)):
                if blk[i].case_id != order[-1].case_id:
                    blk[0], blk[i] = blk[i], blk[0]
                    break
        order.extend(blk)
    return order


def _rotate_pairs(items: list[OrderSlot], shift: int, conds: list[str]) -> list[OrderSlot]:
    by_case: dict[str, list[OrderSlot]] = {}
    for s in items:
        by_case.setdefault(s.case_id, []).append(s)
    out = []
    for slots in by_case.values():
        k = shift % len(slots)
        out.extend(slots[k:] + slots[:k])
    return out


def _separate_adjacent(items: list[OrderSlot], rng: np.random.Generator) -> list[OrderSlot]:
    """Reorder so no two neighbours share a case, keeping each case's condition order (greedy, most-left first)."""
    remaining: dict[str, list[OrderSlot]] = {}
    first_seen: list[str] = []
    for s in items:
        if s.case_id not in remaining:
            first_seen.append(s.case_id)
        remaining.setdefault(s.case_id, []).append(s)
    out: list[OrderSlot] = []
    prev = None
    while any(remaining.values()):
        cands = [c for c in first_seen if remaining[c] and c != prev]
        if not cands:  # only the previous case is left: unavoidable adjacency
            cands = [prev]
        most = max(len(remaining[c]) for c in cands)
        pick = next(c for c in cands if len(remaining[c]) == most)
        out.append(remaining[pick].pop(0))
        prev = pick
    return out


def adjacent_same_case(order: list[OrderSlot]) -> int:
    """How many neighbouring pairs show the same case (0 for a valid order when the design allows it)."""
    return sum(a.case_id == b.case_id for a, b in zip(order, order[1:]))
