"""SortedKeys behaves like a sorted set, whatever the order of inserts and removals."""

from hypothesis import given, settings
from hypothesis import strategies as st

from isns_server.registry.sortedkeys import SortedKeys

operations = st.lists(st.tuples(st.booleans(), st.integers(0, 3000)), max_size=3000)


@settings(max_examples=40, deadline=None)
@given(operations, st.integers(-1, 3001))
def test_matches_a_sorted_set(ops: list[tuple[bool, int]], probe: int) -> None:
    keys: SortedKeys[int] = SortedKeys()
    model: set[int] = set()
    for add, key in ops:
        if add and key not in model:
            keys.add(key)
            model.add(key)
        elif not add and key in model:
            keys.remove(key)
            model.discard(key)
    assert len(keys) == len(model)
    assert list(keys.after(None)) == sorted(model)
    assert list(keys.after(probe)) == sorted(k for k in model if k > probe)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 5000), max_size=2000, unique=True), st.integers(1, 400))
def test_reads_between_bursts_of_inserts_see_every_key(keys: list[int], burst: int) -> None:
    # Inserts wait until a read; a burst is merged one by one or by one sort.
    ordered: SortedKeys[int] = SortedKeys()
    for start in range(0, len(keys), burst):
        for key in keys[start : start + burst]:
            ordered.add(key)
        seen = sorted(keys[: start + burst])
        assert list(ordered.after(None)) == seen
        assert list(ordered.after(seen[len(seen) // 2])) == seen[len(seen) // 2 + 1 :]
