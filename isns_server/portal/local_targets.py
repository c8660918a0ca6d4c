"""The targets declared in the configuration: credentials, zoning exceptions, LUNs."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..config import schema as config
from ..names import normalize_name
from ..scsi import BackstoreError, FileBackstore, LogicalUnit, ScsiTarget, UnitIdentity
from ..scsi.reservation_file import ReservationFile
from .iscsi.chap import ChapCredentials, ChapPolicy
from .iscsi.login import TargetRecord


@dataclass(frozen=True, slots=True)
class LocalTarget:
    record: TargetRecord
    scsi: ScsiTarget
    allowed_initiators: frozenset[str]  # normalised names that may log in unzoned


def chap_policy(
    chap: config.ChapCredentials | None, mutual: config.ChapCredentials | None
) -> ChapPolicy | None:
    """What the configuration's `chap` and `mutual_chap` ask of a login (None: no CHAP)."""
    if chap is None:
        return None

    def credentials(given: config.ChapCredentials) -> ChapCredentials:
        return ChapCredentials(given.user, given.secret.encode())

    return ChapPolicy(credentials(chap), credentials(mutual) if mutual else None)


def open_local_targets(
    targets: Iterable[config.Target], portal_group_tag: int, reservations: Path | None = None
) -> dict[str, LocalTarget]:
    """Each target by normalised name, its LUNs' files opened (created or extended to the
    configured size), their persistent reservations loaded from `reservations/<target
    name>/lun<N>.json` (without `reservations` APTPL is refused). Raises BackstoreError,
    having closed whatever it opened."""
    opened: dict[str, LocalTarget] = {}
    units: dict[int, LogicalUnit] = {}  # of the target being opened
    try:
        for i, target in enumerate(targets):
            units = {}
            for j, lun in enumerate(target.luns):
                store = FileBackstore(lun.path, lun.size, lun.read_only, f"targets[{i}].luns[{j}]")
                identity = UnitIdentity(target.name, portal_group_tag, lun.lun)
                saved = None
                if reservations is not None:
                    name = normalize_name(target.name)
                    saved = ReservationFile(reservations / name / f"lun{lun.lun}.json")
                try:
                    units[lun.lun] = LogicalUnit(
                        store,
                        identity,
                        lun.write_cache,
                        saved,
                        removable=lun.removable,
                        physical_block_size=lun.physical_block_size,
                    )
                except BackstoreError:  # its saved reservations are unreadable
                    store.close()
                    raise
            opened[normalize_name(target.name)] = LocalTarget(
                TargetRecord(
                    target.name, chap_policy(target.chap, target.mutual_chap), target.alias
                ),
                ScsiTarget(units),
                frozenset(normalize_name(name) for name in target.allowed_initiators),
            )
    except BackstoreError:
        close_local_targets(opened)
        for unit in units.values():
            unit.backstore.close()
        raise
    return opened


def close_local_targets(targets: Mapping[str, LocalTarget]) -> None:
    for target in targets.values():
        for unit in target.scsi.units.values():
            unit.backstore.close()
