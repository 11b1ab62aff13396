"""OpenTelemetry traces, off unless the standard ``OTEL_*`` variables turn them on.

Configuration is only the OpenTelemetry SDK's own environment variables, so a team points SecOps AI at
its collector the way it points every other service:

- ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` turns tracing on;
  ``OTEL_TRACES_EXPORTER=otlp`` (or ``console``) does too; ``OTEL_SDK_DISABLED=true`` or
  ``OTEL_TRACES_EXPORTER=none`` keeps it off.
- ``OTEL_EXPORTER_OTLP_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``: ``http/protobuf`` (default)
  or ``grpc`` (needs ``opentelemetry-exporter-otlp-proto-grpc``).
- ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER(_ARG)``, headers, timeouts:
  read by the SDK itself.

When tracing is off nothing is installed: ``tracer()`` hands out OpenTelemetry's no-op tracer, whose
spans cost well under a microsecond (``bench/tracing.py`` measures it).

Spans follow the GenAI semantic conventions (development status) at ``GENAI_SEMCONV_VERSION``, through
the attribute names of the ``opentelemetry-semantic-conventions`` package. Setting
``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`` (the conventions' own switch) adds the
newer names (``gen_ai.provider.name``; content as ``gen_ai.input.messages`` / ``gen_ai.output.messages``
attributes instead of events). Prompt and completion text is never recorded unless
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` (the variable OpenTelemetry's GenAI
instrumentations use); pseudonymised data is recorded as stored, so it stays pseudonymised.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as genai
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from secops_ai import __version__

log = logging.getLogger(__name__)

GENAI_SEMCONV_VERSION = "1.37.0"
PROVIDER = "secops_ai"  # gen_ai.system / gen_ai.provider.name for our own engine
_SCOPE = "secops_ai"
_lock = threading.Lock()
_provider: Any = None


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def tracing_requested() -> bool:
    """True when the standard ``OTEL_*`` variables ask for traces to be exported."""
    if _env("OTEL_SDK_DISABLED").lower() == "true":
        return False
    exporter = _env("OTEL_TRACES_EXPORTER").lower()
    if exporter == "none":
        return False
    if exporter:
        return True
    return bool(_env("OTEL_EXPORTER_OTLP_ENDPOINT") or _env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def latest_experimental() -> bool:
    """``OTEL_SEMCONV_STABILITY_OPT_IN`` asks for the newest experimental GenAI conventions."""
    return "gen_ai_latest_experimental" in {v.strip() for v in _env("OTEL_SEMCONV_STABILITY_OPT_IN").split(",")}


def capture_content() -> bool:
    return _env("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT").lower() == "true"


def setup_tracing(default_service_name: str = "secops-ai") -> bool:
    """Install a tracer provider exporting over OTLP when the environment asks for it. Idempotent.

    Returns whether tracing is on. A broken exporter setting is logged and leaves tracing off: traces
    are never a reason for the server not to start.
    """
    global _provider
    if not tracing_requested():
        return False
    with _lock:
        if _provider is not None:
            return True
        try:
            from opentelemetry.sdk.resources import SERVICE_NAME, Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

            attrs = {} if _env("OTEL_SERVICE_NAME") else {SERVICE_NAME: default_service_name}
            provider = TracerProvider(resource=Resource.create(attrs))  # sampler: OTEL_TRACES_SAMPLER
            exporters = [e.strip() for e in (_env("OTEL_TRACES_EXPORTER") or "otlp").lower().split(",")]
            for name in exporters:
                if name == "console":
                    provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
                elif name == "otlp":
                    provider.add_span_processor(BatchSpanProcessor(_otlp_exporter()))
                else:
                    log.warning("OTEL_TRACES_EXPORTER=%s is not supported here (use otlp or console)", name)
        except Exception as exc:  # tracing must never stop the service
            log.warning("tracing left off: %s", exc)
            return False
        trace.set_tracer_provider(provider)
        _provider = provider
    log.info("OpenTelemetry tracing on (GenAI semconv %s)", GENAI_SEMCONV_VERSION)
    return True


def _otlp_exporter() -> Any:
    protocol = (_env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or _env("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf").lower()
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise RuntimeError("OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs "
                               "`pip install opentelemetry-exporter-otlp-proto-grpc`") from exc
        return OTLPSpanExporter()
    if protocol != "http/protobuf":
        raise RuntimeError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported (http/protobuf or grpc)")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout, compression from OTEL_EXPORTER_OTLP_*


def shutdown_tracing() -> None:
    """Flush and stop the exporter (end of a CLI command or of the server)."""
    with _lock:
        if _provider is not None:
            _provider.force_flush()


def tracer() -> trace.Tracer:
    return trace.get_tracer(_SCOPE, __version__)


def instrument_fastapi(app: Any) -> None:
    """HTTP server spans from OpenTelemetry's FastAPI instrumentation; GenAI spans become their children."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")


def current_ids() -> tuple[str | None, str | None]:
    """(trace_id, span_id) of the current span as hex, or (None, None) outside any recorded span."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None, None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


# -- GenAI spans -------------------------------------------------------------------------------------

@contextlib.contextmanager
def genai_span(operation: str, request_model: str, *, kind: SpanKind = SpanKind.CLIENT,
               attributes: Mapping[str, Any] | None = None, name: str | None = None) -> Iterator[Span]:
    """A span for one GenAI operation (``chat``, ``text_completion``, ``embeddings``, ``invoke_agent``,
    ``execute_tool``), named ``"{operation} {model}"`` as the conventions ask, current inside the block."""
    span = start_genai_span(operation, request_model, kind=kind, attributes=attributes, name=name)
    with trace.use_span(span, end_on_exit=True, record_exception=True, set_status_on_exception=True):
        yield span


def start_genai_span(operation: str, request_model: str, *, kind: SpanKind = SpanKind.CLIENT,
                     attributes: Mapping[str, Any] | None = None, name: str | None = None) -> Span:
    """The span :func:`genai_span` opens, for a caller that ends it itself (a stream that outlives a call)."""
    attrs: dict[str, Any] = {genai.GEN_AI_OPERATION_NAME: operation, genai.GEN_AI_SYSTEM: PROVIDER}
    if latest_experimental():
        attrs[genai.GEN_AI_PROVIDER_NAME] = PROVIDER
    if request_model:
        attrs[genai.GEN_AI_REQUEST_MODEL] = request_model
    attrs.update({k: v for k, v in (attributes or {}).items() if v is not None})
    return tracer().start_span(name or f"{operation} {request_model}".strip(), kind=kind, attributes=attrs)


def set_attributes(span: Span, attributes: Mapping[str, Any]) -> None:
    if span.is_recording():
        span.set_attributes({k: v for k, v in attributes.items() if v is not None})


def record_usage(span: Span, *, response_model: str | None = None, finish_reasons: list[str] | None = None,
                 input_tokens: int | None = None, output_tokens: int | None = None,
                 ttft_s: float | None = None, response_id: str | None = None) -> None:
    """Response attributes of a chat / completion span."""
    if not span.is_recording():
        return
    set_attributes(span, {
        genai.GEN_AI_RESPONSE_MODEL: response_model,
        genai.GEN_AI_RESPONSE_FINISH_REASONS: finish_reasons,
        genai.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
        genai.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
        genai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: ttft_s,
        genai.GEN_AI_RESPONSE_ID: response_id,
    })


def record_content(span: Span, *, messages: list[dict[str, Any]] | None = None,
                   output: str | None = None) -> None:
    """Prompt and completion text, only with the content opt-in."""
    if not span.is_recording() or not capture_content():
        return
    if latest_experimental():
        if messages is not None:
            span.set_attribute(genai.GEN_AI_INPUT_MESSAGES, json.dumps(messages, ensure_ascii=False))
        if output is not None:
            out = [{"role": "assistant", "parts": [{"type": "text", "content": output}]}]
            span.set_attribute(genai.GEN_AI_OUTPUT_MESSAGES, json.dumps(out, ensure_ascii=False))
        return
    for m in messages or []:
        span.add_event(f"gen_ai.{m.get('role', 'user')}.message", {"content": str(m.get("content", ""))})
    if output is not None:
        span.add_event("gen_ai.choice", {"index": 0, "message": json.dumps({"content": output})})


def add_event(name: str, attributes: Mapping[str, Any] | None = None, *, content: Mapping[str, str] | None = None,
              span: Span | None = None) -> None:
    """An event on ``span`` (default: the current span); ``content`` attributes only with the opt-in."""
    span = span or trace.get_current_span()
    if not span.is_recording():
        return
    attrs = {k: v for k, v in (attributes or {}).items() if v is not None}
    if content and capture_content():
        attrs.update(content)
    span.add_event(name, attrs)


def mark_error(span: Span, error_type: str, message: str = "") -> None:
    if span.is_recording():
        span.set_attribute("error.type", error_type)
        span.set_status(Status(StatusCode.ERROR, message))


@contextlib.contextmanager
def stage_span(name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[Span]:
    """A plain internal span for a pipeline stage (an eval suite, a training run, an evolve stage)."""
    with tracer().start_as_current_span(name, attributes={k: v for k, v in (attributes or {}).items()
                                                          if v is not None}) as span:
        yield span


def record_finished_span(name: str, duration_s: float, attributes: Mapping[str, Any] | None = None) -> None:
    """A child span of the current one for work that has just finished and took ``duration_s``.

    Lets a loop report each of its iterations (an eval suite) without re-indenting its body in a ``with``.
    """
    span = tracer().start_span(name, start_time=time.time_ns() - int(duration_s * 1e9),
                               attributes={k: v for k, v in (attributes or {}).items() if v is not None})
    span.end()
