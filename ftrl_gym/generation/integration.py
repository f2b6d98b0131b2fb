"""Stage 3, function integration: tools with overlapping function are merged, n tools → m ≤ n."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from ftrl_gym.generation.documents import (
    Documents,
    ToolDoc,
    broad_compute_doc,
    broad_lookup_doc,
    doc_op,
)
from ftrl_gym.generation.scenes import Scene


@dataclass
class Toolset:
    """Tool documents and which tool answers each sub-problem (the output of stages 3 and 4).

    Attributes:
        docs: The documents, needed tools first; distractors (stage 4) after.
        assignment: Node id → name of the tool whose call answers it.
        log: What the stage did, one line per merge or scaling operation (for inspection).
    """

    docs: list[ToolDoc]
    assignment: dict[str, str]
    log: list[str] = field(default_factory=list)

    def doc(self, name: str) -> ToolDoc:
        """Return the document with this name."""
        return next(d for d in self.docs if d.name == name)

    def replace(self, old: ToolDoc, new: ToolDoc) -> None:
        """Swap a document for another, moving its sub-problems to the new one."""
        self.docs[self.docs.index(old)] = new
        self.assignment = {
            n: (new.name if t == old.name else t) for n, t in self.assignment.items()
        }

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "docs": [d.to_dict() for d in self.docs],
            "assignment": dict(self.assignment),
            "log": list(self.log),
        }


def integrate(
    scene: Scene, documents: Documents, rng: random.Random, merge_rate: float = 0.8
) -> Toolset:
    """Stage 3: merge documents of the same function.

    Documents of the very same op are always merged into one tool; documents of different ops of
    the same family (two facts about cities, two conversions) are merged into one broad tool with a
    selector parameter with probability ``merge_rate``.

    Args:
        scene: The stage-1 scene (its nodes give each document's op).
        documents: The stage-2 documents, one per node.
        rng: The candidate's private generator.
        merge_rate: Probability of merging different ops of one family.

    Returns:
        The merged toolset, m ≤ n documents, with every node assigned to one of them.
    """
    by_family: dict[str, list[tuple[str, str, ToolDoc]]] = {}
    for node in scene.nodes:
        doc = next(d for d in documents.docs if d.name == documents.assignment[node.id])
        by_family.setdefault(doc.family, []).append((node.id, doc_op(node), doc))
    taken = {d.name for d in documents.docs}
    toolset = Toolset([], {})
    for family, members in by_family.items():
        ops = list(dict.fromkeys(op for _, op, _ in members))
        if len(ops) > 1 and rng.random() < merge_rate:
            merged = _broad(family, ops, rng, taken, members[0][2].style)
            toolset.docs.append(merged)
            toolset.assignment.update({node_id: merged.name for node_id, _, _ in members})
            toolset.log.append(
                f"merged {', '.join(d.name for _, _, d in members)} into {merged.name}"
            )
            continue
        for op in ops:
            same = [(node_id, doc) for node_id, o, doc in members if o == op]
            keep = same[0][1]
            toolset.docs.append(keep)
            toolset.assignment.update({node_id: keep.name for node_id, _ in same})
            if len(same) > 1:
                toolset.log.append(f"merged {', '.join(d.name for _, d in same)} into {keep.name}")
    return toolset


def _broad(family: str, ops: list[str], rng: random.Random, taken: set[str], style: str) -> ToolDoc:
    """Write one broad document covering ``ops`` of a family."""
    if family.startswith("lookup:"):
        return broad_lookup_doc(family.split(":")[1], ops, rng, taken, style)
    return broad_compute_doc(family, ops, rng, taken, style)
