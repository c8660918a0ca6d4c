"""`isns-server` command line."""

import sys

from . import launcher
from .api.auth import TokenError
from .app import Application, store_problem
from .replication import migrate
from .scsi import BackstoreError
from .service import ListenError
from .store import StoreError


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["migrate"]:  # isns-server migrate --from-sqlite DIR
        return migrate.main(args[1:])
    return launcher.main(
        "isns-server",
        "iSNS name server (RFC 4171) with SendTargets portal and discovery agents. "
        "Runs on embedded defaults when no configuration file is given. "
        "'isns-server migrate --from-sqlite DIR' copies a registry into etcd.",
        argv,
        build=Application,
        ready=lambda config: "isns-server ready",
        runtime_errors=(ListenError, StoreError, BackstoreError, TokenError),
        refuse=store_problem,
    )


if __name__ == "__main__":
    sys.exit(main())
