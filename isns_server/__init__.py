"""iSNS name server, SendTargets portal and discovery front-ends for iSCSI storage networks."""

__version__ = "0.1.0"
