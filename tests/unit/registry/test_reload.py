"""Registry.reload: after a failed write, memory goes back to what the store holds, and
the timers of the entities that stay keep their deadlines."""

from isns_server.registry.outcome import COUNTERS

from .builders import NOW, iqn, new_registry, node, ok, register


def test_reload_drops_unsaved_changes_and_keeps_running_timers() -> None:
    registry = new_registry()
    ok(register(registry, iqn("a"), "ent-a", node(iqn("a"))))
    saved = [(ref, registry.export_record(ref)) for ref in (("entity", "ent-a"), COUNTERS)]
    deadline = registry.next_deadline()
    assert deadline is not None and deadline > NOW

    ok(register(registry, iqn("b"), "ent-b", node(iqn("b")), now=NOW + 10))  # never saved
    registry.reload([(ref, record) for ref, record in saved if record is not None], NOW + 20)

    assert set(registry.db.nodes) == {iqn("a")}
    assert registry.next_deadline() == deadline  # not restarted by the reload
    tick = registry.tick(deadline + 1)
    assert [removal.eid for removal in tick.removals] == ["ent-a"]
