"""Prometheus metrics for the API: requests, latency, tokens in/out, time to first token, queue depth.

Each app gets its own ``CollectorRegistry`` (several apps in one test process must not clash);
``GET /metrics`` exposes it in the text format.
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("secops_requests_total", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("secops_request_latency_seconds", "HTTP request latency", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.tokens_in = Counter("secops_prompt_tokens_total", "Prompt tokens processed", ["model"],
                                 registry=self.registry)
        self.tokens_out = Counter("secops_completion_tokens_total", "Completion tokens generated", ["model"],
                                  registry=self.registry)
        self.ttft = Histogram("secops_time_to_first_token_seconds", "Time from request to first token",
                              ["model"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("secops_batch_rows", "Sequences decoded together in one forward pass",
                                    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32), registry=self.registry)
        self.queue_depth = Gauge("secops_queue_depth", "Generation requests waiting for the batcher",
                                 registry=self.registry)
        # guardrails: stage = input|output, outcome = answer|caution|refuse (input) or the action applied
        self.guardrails_decisions = Counter("secops_guardrails_decisions_total", "Guardrails decisions",
                                            ["model", "stage", "category", "outcome"], registry=self.registry)
        self.guardrails_latency = Histogram("secops_guardrails_latency_seconds", "Time spent screening",
                                            ["stage"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1),
                                            registry=self.registry)

    def record_tokens(self, model: str, prompt: int, completion: int) -> None:
        self.tokens_in.labels(model).inc(prompt)
        self.tokens_out.labels(model).inc(completion)


def install_metrics(app: FastAPI) -> Metrics:
    metrics = Metrics()
    app.state.metrics = metrics

    @app.middleware("http")
    async def _measure(request: Request, call_next):
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", None)
        if path is None:
            path = "unmatched"  # 404s must not create one label per probed URL
        elif "{" not in path:
            path = request.url.path  # the full path, prefix included (routers keep their own paths)
        metrics.requests.labels(request.method, path, str(response.status_code)).inc()
        metrics.latency.labels(path).observe(time.perf_counter() - start)
        return response

    @app.get("/metrics", include_in_schema=False)
    def _metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return metrics
