"""``vote``: passing attempts whose diffs are the same change after normalising whitespace form a cluster;
the biggest cluster wins, and its best-ranked member is the winner.

No model calls: agreement between independent samples stands in for correctness (majority voting). It
plateaus as N grows (Large Language Monkeys) but costs nothing to run. Ties between clusters of one size go
to the cluster holding the best-ranked attempt, and the reason says so.
"""

from __future__ import annotations

from .._ranking import rank
from ._types import Candidate, Judge, Selection


def normalise_diff(diff: str) -> tuple[str, ...]:
    """A diff's changed lines, per file, with whitespace runs collapsed and blank changes dropped: two
    diffs with equal normal forms make the same change. Hunk headers and index lines are left out (line
    numbers move with blank lines)."""
    lines: list[str] = []
    for line in diff.splitlines():
        if line.startswith("+++ ") or line.startswith("--- "):
            if line.startswith("+++ "):
                lines.append("file " + line[4:].strip().removeprefix("b/"))
            continue
        if line[:1] in "+-" and line[1:].strip():
            lines.append(line[0] + " ".join(line[1:].split()))
    return tuple(lines)


async def select_vote(candidates: list[Candidate], judge: Judge | None = None) -> Selection:
    order = {a.name: i for i, a in enumerate(rank([c.attempt for c in candidates]))}
    clusters: dict[tuple[str, ...], list[Candidate]] = {}
    for c in sorted((c for c in candidates if c.attempt.eligible), key=lambda c: order[c.name]):
        clusters.setdefault(normalise_diff(c.diff), []).append(c)
    selection = Selection("vote", None, "no attempt passed its check")
    if not clusters:
        return selection
    ranked = sorted(clusters.values(), key=lambda members: (-len(members), order[members[0].name]))
    for members in ranked:
        selection.log.append(f"cluster of {len(members)}: {', '.join(m.name for m in members)}")
    top = ranked[0]
    selection.winner = top[0].name
    passing = sum(len(m) for m in ranked)
    if len(ranked) == 1:
        selection.reason = f"all {passing} passing attempts made the same change" if passing > 1 \
            else "the only attempt whose check passed"
    elif len(ranked[1]) == len(top):
        selection.reason = (f"{len(ranked)} distinct changes among {passing} passing attempts; the biggest "
                            f"clusters tie at {len(top)}: the one with the best-ranked attempt wins")
    else:
        selection.reason = f"{len(top)} of {passing} passing attempts made this change (the biggest cluster)"
    if len(top) > 1:
        selection.reason += f"; {top[0].name} is its best-ranked member"
    return selection
