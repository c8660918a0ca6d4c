"""A target's resets, nexus losses and rescans run in the test's own thread.

In the portal each unit's part of these runs on that unit's worker (portal/session/tasks.py,
UnitJob) and the target's part on the event loop; the SCSI tests, which have no workers,
run both parts here in the same order.
"""

from collections.abc import Iterable

from isns_server.scsi import LogicalUnit, ScsiTarget


def reset(target: ScsiTarget, units: Iterable[LogicalUnit], by: str) -> None:
    """A reset by the nexus `by`: every nexus, `by` included, gets a unit attention."""
    everyone = target.everyone(by)
    for unit in units:
        unit.reset(everyone)
        target.announce_reset(unit, everyone)


def nexus_lost(target: ScsiTarget, nexus: str) -> None:
    for unit in target.forget_nexus(nexus):
        unit.nexus_lost(nexus)


def rescan(target: ScsiTarget) -> list[tuple[int, int, int]]:
    """(LUN, old, new bytes) for each unit whose backstore changed size."""
    changes = []
    for lun, unit in sorted(target.units.items()):
        if (change := unit.rescan(target.nexuses)) is not None:
            changes.append((lun, *change))
            target.announce_capacity(unit)
    return changes
