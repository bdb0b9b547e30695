"""Prometheus text-format metrics without a client library: request counts by endpoint and status, a latency
histogram per endpoint, a batch-size histogram per encoder, queue depths. Updated on the event loop only."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Histogram:
    def __init__(self, name: str, help_: str, label: str, buckets: tuple):
        self.name, self.help, self.label, self.buckets = name, help_, label, buckets
        self.counts: dict[str, list[int]] = defaultdict(lambda: [0] * len(buckets))
        self.sums: dict[str, float] = defaultdict(float)
        self.totals: dict[str, int] = defaultdict(int)

    def observe(self, key: str, value: float) -> None:
        counts = self.counts[key]
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                counts[i] += 1
        self.sums[key] += value
        self.totals[key] += 1

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for key in sorted(self.counts):
            lab = f'{self.label}="{_escape(key)}"'
            lines += [f'{self.name}_bucket{{{lab},le="{b}"}} {c}' for b, c in zip(self.buckets, self.counts[key])]
            lines += [
                f'{self.name}_bucket{{{lab},le="+Inf"}} {self.totals[key]}',
                f"{self.name}_sum{{{lab}}} {self.sums[key]:.6f}",
                f"{self.name}_count{{{lab}}} {self.totals[key]}",
            ]
        return lines


class Metrics:
    def __init__(self):
        self.started = time.time()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency = Histogram("clipforge_request_duration_seconds", "Request latency.", "endpoint", LATENCY_BUCKETS)
        self.batch_size = Histogram("clipforge_batch_size", "Items per encoder run.", "encoder", BATCH_BUCKETS)
        self.gauges: dict[str, tuple[str, Callable[[], dict[str, float]]]] = {}
        self.in_flight = 0

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.requests[(endpoint, method, status)] += 1
        self.latency.observe(endpoint, seconds)

    def observe_batch(self, encoder: str, size: int) -> None:
        self.batch_size.observe(encoder, size)

    def gauge(self, name: str, help_: str, values: Callable[[], dict[str, float]]) -> None:
        """``values()`` -> ``{label value: number}`` read at scrape time."""
        self.gauges[name] = (help_, values)

    def render(self) -> str:
        lines = [
            "# HELP clipforge_requests_total Requests by endpoint, method and status.",
            "# TYPE clipforge_requests_total counter",
        ]
        lines += [
            f'clipforge_requests_total{{endpoint="{_escape(e)}",method="{m}",status="{s}"}} {n}'
            for (e, m, s), n in sorted(self.requests.items())
        ]
        lines += self.latency.render() + self.batch_size.render()
        lines += [
            "# HELP clipforge_in_flight_requests Requests being handled.",
            "# TYPE clipforge_in_flight_requests gauge",
            f"clipforge_in_flight_requests {self.in_flight}",
        ]
        for name, (help_, values) in self.gauges.items():
            lines += [f"# HELP {name} {help_}", f"# TYPE {name} gauge"]
            lines += [f'{name}{{encoder="{_escape(k)}"}} {v}' for k, v in sorted(values().items())]
        lines += [
            "# HELP clipforge_start_time_seconds Unix time the server started.",
            "# TYPE clipforge_start_time_seconds gauge",
            f"clipforge_start_time_seconds {self.started:.3f}",
        ]
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
