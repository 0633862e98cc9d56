"""The core's rooms build on each other one way: a file of the core never includes a header of a
room that builds on its own (X.hpp and X.cpp are one room), and no core file includes nginx."""

import os
import re

SRC = os.path.join(os.path.dirname(__file__), "..", "..", "src")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)\.hpp"', re.M)


def rooms():
    """room -> the rooms its header and source include (the core only: not the nginx glue)."""
    graph = {}
    for name in sorted(os.listdir(SRC)):
        room, ext = os.path.splitext(name)
        if ext not in (".hpp", ".cpp") or room.startswith("ngx"):
            continue
        with open(os.path.join(SRC, name)) as f:
            used = set(INCLUDE.findall(f.read())) - {room}
        graph.setdefault(room, set()).update(used)
    return graph


def cycle(graph):
    """A cycle of rooms as a list, or None."""
    state = {}

    def visit(room, path):
        state[room] = "open"
        for other in sorted(graph.get(room, ())):
            if state.get(other) == "open":
                return path[path.index(other):] + [other] if other in path else [room, other]
            if other not in state:
                found = visit(other, path + [other])
                if found:
                    return found
        state[room] = "done"
        return None

    for room in sorted(graph):
        if room not in state:
            found = visit(room, [room])
            if found:
                return found
    return None


def test_the_core_includes_run_one_way():
    graph = rooms()
    assert len(graph) > 10, graph
    found = cycle(graph)
    assert found is None, "rooms that include each other: " + " -> ".join(found)


def test_no_core_file_includes_nginx():
    for room, used in rooms().items():
        assert not any(u.startswith("ngx") for u in used), room


def test_a_cycle_is_found():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None
