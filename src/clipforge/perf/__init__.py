"""Per-encoder latency/throughput measurement, each configuration in its own subprocess."""
