#!/usr/bin/env python3
"""Checks that the server's modules depend on each other in one direction only (ARCHITECTURE.md,
"Invariants"): among the children of any module under src/server, no two reach each other,
directly or through others. Prints each circle found and exits 1; prints nothing and exits 0
when there is none.

Module paths come from the file tree (`a.rs` and `a/b.rs` make `a` and `a::b`); arrows from
`use` paths and inline paths (`super::x::…`, `crate::server::x::…`, `self::x::…`), with names
re-exported by a parent (`pub use child::{Name}`) followed to the child that defines them.
Unit-test modules (`#[cfg(test)] mod tests`) are left out: they may look anywhere.
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "src"
TOP = ("server",)


def module_of(path: Path) -> tuple:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return parts


def code_without_tests(text: str) -> str:
    cut = re.search(r"#\[cfg\(test\)\]\s*mod tests", text)
    return text[: cut.start()] if cut else text


files = {}
for path in sorted((ROOT / "server").rglob("*.rs")):
    files[module_of(path)] = code_without_tests(path.read_text())
files[TOP] = code_without_tests((ROOT / "server.rs").read_text())
modules = set(files)

# Names a module re-exports from one of its children: (module, name) -> child module.
reexports = {}
for module, text in files.items():
    for m in re.finditer(r"pub use (\w+)::(\{[^}]*\}|\w+)", text):
        child = module + (m.group(1),)
        if child in modules:
            for name in re.findall(r"\w+", m.group(2)):
                reexports[(module, name)] = child


def resolve(module: tuple, path: list) -> tuple:
    """The deepest known module a path (already absolute, as components) names."""
    best = None
    for n in range(1, len(path) + 1):
        if tuple(path[:n]) in modules:
            best = tuple(path[:n])
    if best is not None and len(path) > len(best):
        follow = reexports.get((best, path[len(best)]))
        if follow:
            best = follow
    return best


def absolute(module: tuple, path: list):
    if path[0] == "crate":
        return path[1:]
    if path[0] == "self":
        return list(module) + path[1:]
    base = list(module)
    while path and path[0] == "super":
        base = base[:-1]
        path = path[1:]
    return base + path


PATH = re.compile(r"\b((?:crate|self|super)(?:::(?:super|\w+))+)")
GROUP = re.compile(r"\buse\s+((?:crate|self|super)(?:::\w+)*)::\{([^;]*)\};", re.S)

edges = {}
for module, text in files.items():
    targets = set()
    for m in GROUP.finditer(text):
        prefix = m.group(1).split("::")
        for item in re.split(r",\s*", re.sub(r"\s+", " ", m.group(2))):
            item = item.strip().split(" as ")[0].strip()
            if item and item != "self" and not item.startswith("{"):
                targets.add(tuple(absolute(module, prefix + item.split("::"))))
            elif item == "self":
                targets.add(tuple(absolute(module, prefix)))
    for m in PATH.finditer(text):
        targets.add(tuple(absolute(module, m.group(1).split("::"))))
    for target in targets:
        resolved = resolve(module, list(target))
        if resolved is None or resolved == module:
            continue
        # The arrow between the two modules' ancestors that are siblings.
        common = 0
        while (
            common < min(len(module), len(resolved))
            and module[common] == resolved[common]
        ):
            common += 1
        if common >= len(module) or common >= len(resolved):
            continue  # a module and its own ancestor or descendant
        a, b = module[: common + 1], resolved[: common + 1]
        edges.setdefault(a, set()).add(b)


# Circles: strongly connected components of more than one module (Tarjan).
index, low, stack, on_stack, circles = {}, {}, [], set(), []
counter = [0]


def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on_stack.add(v)
    for w in edges.get(v, ()):
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on_stack:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        component = []
        while True:
            w = stack.pop()
            on_stack.discard(w)
            component.append(w)
            if w == v:
                break
        if len(component) > 1:
            circles.append(component)


sys.setrecursionlimit(10_000)
for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
    if v not in index:
        visit(v)

for component in circles:
    names = sorted("::".join(m) for m in component)
    inside = set(component)
    arrows = sorted(
        f"{'::'.join(a)} -> {'::'.join(b)}"
        for a in component
        for b in edges.get(a, ())
        if b in inside
    )
    print(f"modules that depend on each other: {', '.join(names)}")
    for arrow in arrows:
        print(f"  {arrow}")
sys.exit(1 if circles else 0)
