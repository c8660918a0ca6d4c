"""Several isns-server replicas over one etcd cluster (docs/replication.md)."""
