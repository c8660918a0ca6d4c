"""The portal's sans-IO layer: one connection's Login and Full Feature Phases, its commands'
Data-Out and responses, and its SCSI tasks. Bytes and time in, PDUs and tasks out."""
