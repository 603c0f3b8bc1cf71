"""An environment's diagram (the Mermaid block of dist/<env>/ARCHITECTURE.md) with the change marked.

The diagram is the one the synth draws; here the BASE and working-tree versions are merged: a node whose
line differs is `changed`, a node or edge only in the working tree `added`, one only at BASE `removed` (kept,
dashed in red, so the reviewer sees what goes away).
"""

from __future__ import annotations

import re

_NODE = re.compile(r"^\s*([A-Za-z0-9_]+)\s*[\[\(\{]")
_EDGE = re.compile(r"^\s*([A-Za-z0-9_]+)\s+(-->|-\.->|==>|---)(\|[^|]*\|)?\s*([A-Za-z0-9_]+)\s*$")
STYLES = [
    "  classDef added fill:#dafbe1,stroke:#1a7f37,stroke-width:2px",
    "  classDef changed fill:#fff8c5,stroke:#9a6700,stroke-width:2px",
    "  classDef removed fill:#ffebe9,stroke:#cf222e,stroke-width:2px,stroke-dasharray:4 3",
]
EDGE_STYLE = {
    "added": "stroke:#1a7f37,stroke-width:3px",
    "removed": "stroke:#cf222e,stroke-width:2px,stroke-dasharray:4 3",
}


def mermaid(markdown: str | None) -> list[str]:
    """The lines inside the first ```mermaid block (none when there is no such block)."""
    if not markdown:
        return []
    m = re.search(r"```mermaid\n(.*?)```", markdown, re.S)
    return m.group(1).rstrip("\n").split("\n") if m else []


def _edge_key(line: str) -> tuple[str, str, str] | None:
    m = _EDGE.match(line)
    return (m.group(1), m.group(3) or "", m.group(4)) if m else None


def marked(base: str | None, head: str | None) -> tuple[str, int]:
    """The merged diagram as a ```mermaid block, and how many nodes and edges changed (0: same diagram)."""
    old, new = mermaid(base), mermaid(head)
    old_nodes = {
        m.group(1): line.strip() for line in old if (m := _NODE.match(line)) and not _EDGE.match(line)
    }
    old_edges = {k: line for line in old if (k := _edge_key(line))}
    new_edges = {k for line in new if (k := _edge_key(line))}
    lines, marks, edge_marks = [], {}, {}
    edge_index = 0
    seen: set[str] = set()
    for line in new:
        edge = _edge_key(line)
        node = _NODE.match(line)
        if edge:
            if edge not in old_edges:
                edge_marks[edge_index] = "added"
            edge_index += 1
        elif node and not line.strip().startswith(("subgraph", "flowchart")):
            nid = node.group(1)
            seen.add(nid)
            if nid not in old_nodes:
                marks[nid] = "added"
            elif old_nodes[nid] != line.strip():
                marks[nid] = "changed"
        lines.append(line)
    removed_nodes = [
        line for nid, line in old_nodes.items() if nid not in seen and not nid.startswith("subgraph")
    ]
    for line in removed_nodes:
        node = _NODE.match(line)
        if node:
            marks[node.group(1)] = "removed"
            lines.append(f"  {line}")
    for key, line in old_edges.items():
        if key not in new_edges:
            edge_marks[edge_index] = "removed"
            edge_index += 1
            lines.append(line)
    if not lines:
        return "", 0
    lines += STYLES
    for nid, how in sorted(marks.items()):
        lines.append(f"  class {nid} {how}")
    for i, how in sorted(edge_marks.items()):
        lines.append(f"  linkStyle {i} {EDGE_STYLE[how]}")
    return "```mermaid\n" + "\n".join(lines) + "\n```", len(marks) + len(edge_marks)
