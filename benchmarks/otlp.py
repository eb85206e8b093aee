"""OTLP export beside the OpenTelemetry SDK's own logging bridge (docs/otlp.md).

Run as ``python -m benchmarks.otlp [--quick]``. Needs ``opentelemetry-sdk``,
``opentelemetry-exporter-otlp-proto-http`` and
``opentelemetry-instrumentation-logging`` (the sdk's ``LoggingHandler`` is
deprecated since 1.40; its replacement is used).

Each candidate runs in its own process (they install global state) with the
floor interleaved beside it, logs ``logger.info("purchase", extra={...})``
15 rounds of 2,000 calls (plus 200 warm-up calls), then gets its documented
flush. A local sink in another process decodes every request (OTLP/JSON,
OTLP/protobuf, the TraceTelemetry array) and counts the records that
arrived. "durable at return" counts the events on disk when the burst ends,
before any flush.

A second section times the encoders per event: the default protocol's batch
body against the plain join it replaced (its drain cost must not grow), and
the OTLP encoders. A third drains a backlog on the default protocol with
each of the two, to the same sink.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Tuple

from ._common import PROPERTIES, make_floor
from ._timing import interleave

CANDIDATES = ("tt-default", "tt-otlp-json", "tt-otlp-protobuf", "otel-sdk")


# -- the sink ----------------------------------------------------------------------


def _count(path: str, content_type: str, body: bytes) -> int:
    if path.startswith("/telemetry"):
        return len(json.loads(body))
    if content_type.startswith("application/x-protobuf"):
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
            ExportLogsServiceRequest,
        )

        request = ExportLogsServiceRequest.FromString(body)
        return sum(len(s.log_records) for r in request.resource_logs for s in r.scope_logs)
    document = json.loads(body)
    return sum(
        len(s.get("logRecords", []))
        for r in document.get("resourceLogs", [])
        for s in r.get("scopeLogs", [])
    )


def _serve(port_queue: Any) -> None:
    counts: Dict[str, int] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def _reply(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._reply(json.dumps(counts).encode())

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            kind = self.path.split("/")[1]
            try:
                found = _count(
                    "/" + "/".join(self.path.split("/")[2:]),
                    self.headers.get("Content-Type", ""),
                    body,
                )
            except Exception:
                kind, found = "unparsed", 1
            counts[kind] = counts.get(kind, 0) + found
            self._reply(b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_queue.put(server.server_address[1])
    server.serve_forever()


# -- one candidate, in its own process ------------------------------------------------


def _setup(name: str, base: str, folder: str) -> Tuple[Callable[[], None], Callable[[], int]]:
    logger = logging.getLogger(f"bench.{name}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if name == "otel-sdk":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.instrumentation.logging.handler import LoggingHandler
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

        provider = LoggerProvider()
        provider.add_log_record_processor(
            BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{base}/{name}/v1/logs"))
        )
        logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=provider))

        def finish() -> int:
            provider.force_flush()
            provider.shutdown()
            return 0

        return (lambda: logger.info("purchase", extra=PROPERTIES)), finish

    from trace_telemetry import TelemetryClient, TelemetryHandler, TelemetryOptions

    queue_path = os.path.join(folder, "q.ndjson")
    if name == "tt-default":
        options = TelemetryOptions(endpoint_url=f"{base}/{name}/telemetry", queue_path=queue_path)
    else:
        options = TelemetryOptions(
            protocol="otlp",
            otlp_encoding=name.rsplit("-", 1)[1],
            endpoint_url=f"{base}/{name}/v1/logs",
            queue_path=queue_path,
        )
    client = TelemetryClient(options)
    client.start()
    logger.addHandler(TelemetryHandler(client=client))

    def finish_tt() -> int:
        durable = client.queued_count + client.stats()["sent"]
        client.flush(timeout=300)
        client.close()
        return int(durable)

    return (lambda: logger.info("purchase", extra=PROPERTIES)), finish_tt


def _run_candidate(name: str, base: str, rounds: int, per_round: int) -> None:
    folder = tempfile.mkdtemp(prefix=f"tt-otlp-{name}-")
    floor_file = open(os.path.join(folder, "floor.ndjson"), "a")
    call, finish = _setup(name, base, folder)
    timings = interleave({"floor": make_floor(floor_file), name: call}, rounds, per_round)
    started = time.monotonic()
    durable = finish()
    print(
        json.dumps(
            {
                "timings": timings,
                "calls": rounds * per_round + min(200, per_round),
                "durable_at_return": durable,
                "finish_seconds": round(time.monotonic() - started, 1),
            }
        )
    )


# -- encoders -------------------------------------------------------------------------


def _encoders(quick: bool) -> Dict[str, float]:
    from trace_telemetry._protocol import OtlpProtocol, TraceTelemetryProtocol
    from trace_telemetry._serialize import encode

    from ._common import floor_event

    lines = [encode(floor_event()) for _ in range(20)]
    default = TraceTelemetryProtocol()
    json_otlp = OtlpProtocol("json", [])
    candidates: Dict[str, Callable[[], object]] = {
        "join (before)": lambda: b"[" + b",".join(lines) + b"]",
        "tracetelemetry": lambda: default.encode_batch(lines),
        "otlp json": lambda: json_otlp.encode_batch(lines),
    }
    try:
        proto_otlp = OtlpProtocol("protobuf", [])
        candidates["otlp protobuf"] = lambda: proto_otlp.encode_batch(lines)
    except ValueError:
        pass
    timings = interleave(candidates, 5 if quick else 15, 200 if quick else 1000)
    return {name: round(value["median_us"] / len(lines), 3) for name, value in timings.items()}


def _drain_default(base: str, quick: bool) -> Dict[str, float]:
    """Drain a backlog on the default protocol: today's encoder vs the plain join it replaced.

    Same queue contents, same sink, alternating rounds; µs per event, median.
    """
    import statistics

    from trace_telemetry import TelemetryClient, TelemetryOptions
    from trace_telemetry._protocol import json_array

    count = 2000 if quick else 10000
    folder = tempfile.mkdtemp(prefix="tt-otlp-drain-")
    samples: Dict[str, List[float]] = {"join (before)": [], "tracetelemetry": []}
    for round_index in range(3 if quick else 7):
        for name in sorted(samples, reverse=bool(round_index % 2)):
            path = os.path.join(folder, f"{name}-{round_index}.ndjson".replace(" ", "_"))
            client = TelemetryClient(
                TelemetryOptions(
                    queue_path=path, endpoint_url=f"{base}/drain/telemetry", batch_size=100
                )
            )
            for index in range(count):
                client.track("purchase", {**PROPERTIES, "i": index})
            if name == "join (before)":
                client._delivery.build_body = json_array
            started = time.perf_counter()
            assert client.flush(300)
            samples[name].append((time.perf_counter() - started) / count * 1e6)
            client.close()
    return {name: round(statistics.median(values), 3) for name, values in samples.items()}


# -- the parent --------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--run":
        name, base, rounds, per_round = sys.argv[2:6]
        _run_candidate(name, base, int(rounds), int(per_round))
        return
    quick = "--quick" in sys.argv
    rounds, per_round = (3, 1000) if quick else (15, 2000)
    ports: Any = multiprocessing.Queue()
    sink = multiprocessing.Process(target=_serve, args=(ports,), daemon=True)
    sink.start()
    base = f"http://127.0.0.1:{ports.get(timeout=30)}"
    rows: List[Dict[str, Any]] = []
    try:
        for name in CANDIDATES:
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.otlp",
                    "--run",
                    name,
                    base,
                    str(rounds),
                    str(per_round),
                ],
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            if result.returncode != 0:
                print(f"{name}: failed\n{result.stderr[-2000:]}", file=sys.stderr)
                continue
            data = json.loads(result.stdout.strip().splitlines()[-1])
            import urllib.request

            with urllib.request.urlopen(f"{base}/stats", timeout=10) as answer:
                counts = json.loads(answer.read())
            timings = data["timings"]
            rows.append(
                {
                    "candidate": name,
                    "median_us": round(timings[name]["median_us"], 2),
                    "floor_us": round(timings["floor"]["median_us"], 2),
                    "ratio": round(timings[name]["median_us"] / timings["floor"]["median_us"], 2),
                    "calls": data["calls"],
                    "durable_at_return": data["durable_at_return"],
                    "delivered": counts.get(name, 0),
                    "finish_seconds": data["finish_seconds"],
                }
            )
        drain = _drain_default(base, quick)
    finally:
        sink.terminate()
    encoders = _encoders(quick)
    print(
        json.dumps(
            {
                "handlers": rows,
                "encode_us_per_event": encoders,
                "default_drain_us_per_event": drain,
            },
            indent=2,
        )
    )
    header = "| candidate | µs/call (median) | × floor | calls | durable at return | delivered |"
    print("\n" + header + "\n|" + "---|" * 6)
    for row in rows:
        print(
            f"| {row['candidate']} | {row['median_us']} | {row['ratio']} | {row['calls']} | "
            f"{row['durable_at_return']} | {row['delivered']} |"
        )
    print("\n| encoder (20-event batch) | µs per event |\n|---|---|")
    for name, value in encoders.items():
        print(f"| {name} | {value} |")
    print("\n| default-protocol drain (batch_size=100) | µs per event |\n|---|---|")
    for name, value in drain.items():
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
