"""Embedded iSCSI target portal (RFC 3720/7143): SendTargets discovery and a SCSI data path."""
