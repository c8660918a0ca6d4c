"""The portal's asyncio runtime: the socket protocol that drives a `Connection`, the LUN
worker threads, scatter/gather sends, and the process tweaks (heap, CPU affinity)."""
