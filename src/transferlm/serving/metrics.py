"""Counters, gauges and histograms for `/metrics`, written in the Prometheus text format (0.0.4).

    requests = Counter("transferlm_requests_total", "HTTP requests", ("endpoint", "status"))
    requests.inc(endpoint="/embed", status="200")
    registry.render()   # "# HELP ...\n# TYPE ... counter\ntransferlm_requests_total{...} 1\n..."

The format (https://prometheus.io/docs/instrumenting/exposition_formats/): per metric a `# HELP`
and a `# TYPE` line, then one sample line per label set; a histogram gives cumulative
`_bucket{le="..."}` lines ending with `le="+Inf"`, then `_sum` and `_count`. The tests read our
output back with prometheus_client's own parser.

What this file does not do: push to a gateway, keep per-process files for several workers
(`transferlm serve` is one process), or summaries / quantiles (the histograms give them).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(str(v))}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(x: float) -> str:
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return repr(float(x)) if not float(x).is_integer() else str(int(x))


class _Metric:
    kind = ""

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        self.name, self.help, self.labelnames = name, help, tuple(labelnames)
        self._lock = threading.Lock()  # the compute thread and the event loop both record

    def _key(self, labels: dict[str, str]) -> tuple[str, ...]:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name}: labels {sorted(labels)}, expected {sorted(self.labelnames)}")
        return tuple(str(labels[n]) for n in self.labelnames)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class _Scalar(_Metric):
    """One number per label set: what counters and gauges share (storage, reading, rendering)."""

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help, labelnames)
        self._values: dict[tuple[str, ...], float] = {}

    def value(self, **labels: str) -> float:
        return self._values.get(self._key(labels), 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return self.header() + [f"{self.name}{_labels(self.labelnames, k)} {_number(v)}" for k, v in items]


class Counter(_Scalar):
    kind = "counter"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        if not name.endswith("_total"):
            raise ValueError(f"counter {name!r}: Prometheus counters are named *_total")
        super().__init__(name, help, labelnames)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise ValueError(f"{self.name}: a counter only goes up (got {amount})")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount


class Gauge(_Scalar):
    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = (), buckets: Sequence[float] = ()) -> None:
        super().__init__(name, help, labelnames)
        if not buckets or list(buckets) != sorted(set(buckets)):
            raise ValueError(f"{self.name}: buckets must be given, increasing and distinct")
        self.buckets = tuple(float(b) for b in buckets) + (math.inf,)
        self._counts: dict[tuple[str, ...], list[int]] = {}  # per bucket, not cumulative
        self._sums: dict[tuple[str, ...], float] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        i = next(i for i, b in enumerate(self.buckets) if value <= b)
        with self._lock:
            counts = self._counts.setdefault(key, [0] * len(self.buckets))
            counts[i] += 1
            self._sums[key] = self._sums.get(key, 0.0) + value

    def count(self, **labels: str) -> int:
        return sum(self._counts.get(self._key(labels), []))

    def render(self) -> list[str]:
        with self._lock:
            items = sorted((k, list(c), self._sums[k]) for k, c in self._counts.items())
        lines = self.header()
        for key, counts, total in items:
            running = 0
            for b, c in zip(self.buckets, counts):
                running += c
                le = 'le="' + _number(b) + '"'
                lines.append(f"{self.name}_bucket{_labels(self.labelnames, key, le)} {running}")
            lines.append(f"{self.name}_sum{_labels(self.labelnames, key)} {_number(total)}")
            lines.append(f"{self.name}_count{_labels(self.labelnames, key)} {running}")
        return lines


class Registry:
    """The server's metrics, in the order `/metrics` lists them."""

    def __init__(self) -> None:
        self.metrics: list[_Metric] = []

    def add(self, metric: _Metric) -> _Metric:
        if any(m.name == metric.name for m in self.metrics):
            raise ValueError(f"metric {metric.name!r} registered twice")
        self.metrics.append(metric)
        return metric

    def render(self) -> str:
        return "\n".join(line for m in self.metrics for line in m.render()) + "\n"


LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)  # seconds
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)  # texts per forward pass
TOKEN_BUCKETS = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)  # padded tokens per forward pass


class ServerMetrics:
    """What `transferlm serve` records: requests, latency, batches, queues, generated tokens."""

    def __init__(self) -> None:
        self.registry = r = Registry()
        self.requests = r.add(Counter("transferlm_requests_total", "HTTP requests by endpoint and status code",
                                      ("endpoint", "status")))
        self.latency = r.add(Histogram("transferlm_request_duration_seconds",
                                       "time from request to response (to the last event for streams)",
                                       ("endpoint",), LATENCY_BUCKETS))
        self.batch_size = r.add(Histogram("transferlm_batch_size",
                                          "inputs per forward pass (generate: sequences per decode step)",
                                          ("model", "task"), SIZE_BUCKETS))
        self.batch_tokens = r.add(Histogram("transferlm_batch_tokens", "padded tokens per forward pass",
                                            ("model", "task"), TOKEN_BUCKETS))
        self.queue_length = r.add(Gauge("transferlm_queue_length", "inputs waiting for a forward pass",
                                        ("model",)))
        self.inputs = r.add(Counter("transferlm_inputs_total", "inputs (texts, prompts) computed",
                                    ("model", "task")))
        self.generated = r.add(Counter("transferlm_generated_tokens_total", "tokens generated", ("model",)))

    def batch(self, model: str, task: str, rows: int, padded_tokens: int) -> None:
        """One forward pass (or decode step) of `rows` inputs: both batch histograms, in one place."""
        self.batch_size.observe(rows, model=model, task=task)
        self.batch_tokens.observe(padded_tokens, model=model, task=task)

    def render(self) -> str:
        return self.registry.render()
