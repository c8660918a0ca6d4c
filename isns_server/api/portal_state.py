"""The embedded portal as the API shows it: its targets with their LUNs, its sessions."""

import asyncio
import time
from collections.abc import Callable

from ..config import Config
from ..isnsp.messages import PortNumber
from ..names import normalize_name
from ..portal.server import PortalServer
from .context import Json, PortalState
from .views import portal_text


def portal_state(config: Config, portal: Callable[[], PortalServer | None]) -> PortalState:
    """`portal()` is the running portal, or None when it is disabled or stopped."""

    def targets() -> list[Json]:
        server = portal()
        if server is None or server.directory is None:
            return []
        directory = server.directory
        portals = [portal_text(p.address, PortNumber(p.port)) for p in directory.portals]
        found = []
        for target in config.targets:
            local = directory.targets.get(normalize_name(target.name))
            units = local.scsi.units if local is not None else {}
            luns = []
            for lun in target.luns:
                unit = units.get(lun.lun)
                # The size the LUN has now (a rescan may have grown it; 0 in the file
                # means "the file's size").
                size = unit.state.backstore.size if unit is not None else lun.size
                luns.append(
                    {
                        "lun": lun.lun,
                        "path": str(lun.path),
                        "size": size,
                        "read_only": lun.read_only,
                    }
                )
            found.append(
                {"name": target.name, "alias": target.alias, "portals": portals, "luns": luns}
            )
        return found

    def sessions() -> list[Json]:
        server = portal()
        if server is None or server.directory is None:
            return []
        # Sessions keep the portal's clock (the event loop's); the API answers Unix time.
        offset = time.time() - asyncio.get_running_loop().time()
        found = []
        for session in server.directory.live_sessions():
            result = session.login
            parameters = result.parameters
            found.append(
                {
                    "initiator": parameters.initiator_name,
                    "isid": result.isid.hex(),
                    "tsih": result.tsih,
                    "target": parameters.target_name,
                    "type": parameters.session_type.name.lower(),
                    "header_digest": str(parameters.header_digest),
                    "data_digest": str(parameters.data_digest),
                    "chap_user": result.chap_user,
                    "peer": session.peer,
                    "login_time": session.since + offset,
                    "commands": session.counters.commands,
                    "bytes_read": session.counters.bytes_read,
                    "bytes_written": session.counters.bytes_written,
                }
            )
        return found

    return PortalState(targets, sessions)
