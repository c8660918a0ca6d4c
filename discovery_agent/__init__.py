"""SLP directory agent and DNS-SD advertiser fed from an iSNS server."""
