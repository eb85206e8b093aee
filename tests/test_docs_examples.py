"""Every code example of the documentation runs, against a real loopback receiver.

The examples live in ``docs/examples`` and are included verbatim in the pages,
so they cannot rot.
"""

from __future__ import annotations

import logging.config
import os
import runpy
import shutil
from pathlib import Path
from typing import List

import pytest

from trace_telemetry._receiver import Receiver

from .conftest import ROOT, read_lines, run_python

EXAMPLES = ROOT / "docs" / "examples"


def run_example(name: str, receiver: Receiver, workdir: Path) -> List[str]:
    for helper in ("myapp_telemetry.py",):
        shutil.copy(EXAMPLES / helper, workdir / helper)
    env = dict(os.environ, TELEMETRY_URL=receiver.url, PYTHONPATH=str(workdir))
    code = f"import runpy, sys; sys.path.insert(0, {str(workdir)!r}); runpy.run_path({str(EXAMPLES / name)!r}, run_name='__main__')"
    result = run_python(code, env=env, cwd=str(workdir), timeout=60)
    assert 0 == result.returncode, result.stdout + result.stderr
    return [event["name"] for event in receiver.events]


@pytest.mark.parametrize(
    ("example", "expected"),
    [
        ("quickstart.py", ["page_view", "purchase", "signup", "exception"]),
        ("scrubbing.py", ["signup"]),
        ("logging_dictconfig.py", ["disk %d%% full", "exception"]),
        ("logging_client.py", ["invoice %s overdue"]),
        ("flask_app.py", ["purchase", "purchase", "exception"]),
        ("structlog_plain.py", ["export_started", "exception"]),
        ("structlog_stdlib.py", ["request_served", "a library says %s"]),
    ],
)
def test_example_runs_and_delivers(
    example: str, expected: List[str], receiver: Receiver, tmp_path: Path
) -> None:
    assert expected == run_example(example, receiver, tmp_path)


def test_the_scrubbing_example_scrubs(receiver: Receiver, tmp_path: Path) -> None:
    run_example("scrubbing.py", receiver, tmp_path)
    (event,) = receiver.events
    assert {"contact": "<email>", "plan": "pro"} == event["data"]
    assert "" == event["ipAddress"]


@pytest.mark.parametrize("example", ["django_settings.py", "gunicorn.conf.py"])
def test_settings_examples_configure_logging(
    example: str, tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TELEMETRY_URL", receiver.url)
    monkeypatch.setenv("TELEMETRY_DIR", str(tmp_path))
    settings = runpy.run_path(str(EXAMPLES / example))
    if example.startswith("gunicorn"):
        # gunicorn updates a copy of its defaults with the dict: do the same.
        from gunicorn.glogging import CONFIG_DEFAULTS  # a test dependency

        config = dict(CONFIG_DEFAULTS, **settings["logconfig_dict"])
    else:
        config = settings["LOGGING"]
    queue = tmp_path / "q.ndjson"
    config["handlers"]["telemetry"]["queue_path"] = str(queue)
    logging.config.dictConfig(config)
    logger_name = "django.request" if example.startswith("django") else "gunicorn.error"
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger(logger_name).exception("Internal Server Error: /orders")
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    assert ["exception"] == [e["name"] for e in receiver.events]  # sent when the handler closed
    assert "Internal Server Error: /orders" == receiver.events[0]["data"]["logMessage"]


def test_the_ini_example_loads_with_file_config(tmp_path: Path) -> None:
    ini = (
        (EXAMPLES / "logging.ini")
        .read_text()
        .replace(
            '"application_name"',
            f'"queue_path": {str(tmp_path / "q.ndjson")!r}, "application_name"',
        )
    )
    path = tmp_path / "logging.ini"
    path.write_text(ini)
    logging.config.fileConfig(str(path), disable_existing_loggers=False)
    logging.getLogger("x").info("from ini")
    handler = logging.getLogger().handlers[0]
    assert "ini-app" == handler.client.options.application_name  # type: ignore[attr-defined]
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    assert ["from ini"] == [e["name"] for e in read_lines(tmp_path / "q.ndjson")]


def python_block(readme: str, heading: str) -> str:
    """The first ``python`` block after ``heading`` in a README, as printed."""
    text = (ROOT / readme).read_text("utf-8")
    section = text[text.index(heading) :]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("```\n", start)]


@pytest.mark.parametrize(
    ("readme", "heading"), [("README.md", "## Quick start"), ("README.pt-BR.md", "## Uso rápido")]
)
def test_the_readme_quick_start_runs_as_pasted(
    readme: str, heading: str, receiver: Receiver, tmp_path: Path
) -> None:
    """Pasted into a fresh interpreter with ``trace-telemetry serve`` running.

    The only change: the URL of ``trace-telemetry serve`` (port 8080)
    becomes this test's receiver, which listens on a free port.
    """
    snippet = python_block(readme, heading)
    default_serve_url = "http://127.0.0.1:8080/telemetry"
    assert default_serve_url in snippet
    result = run_python(snippet.replace(default_serve_url, receiver.url), cwd=str(tmp_path))
    assert 0 == result.returncode, result.stderr
    assert "" == result.stderr  # nothing to warn about
    assert ["page_view", "purchase", "signup", "exception"] == [
        event["name"] for event in receiver.events
    ]
    exception = receiver.events[-1]["data"]
    assert ("ValueError", "checkout") == (exception["exceptionType"], exception["step"])
    assert (tmp_path / "telemetry-queue.ndjson").exists()


def test_the_portuguese_readme_logging_and_structlog_snippets_run(
    receiver: Receiver, tmp_path: Path
) -> None:
    url = "http://127.0.0.1:8080/telemetry"
    logging_block = python_block("README.pt-BR.md", "## Logging (`TelemetryHandler`)")
    structlog_block = python_block("README.pt-BR.md", "## structlog (`TelemetryProcessor`)")
    code = (
        logging_block
        + "logging.getLogger('app').warning('disco %d%% cheio', 91)\n"
        + "from trace_telemetry import TelemetryClient, TelemetryOptions\n"
        + f"client = TelemetryClient(TelemetryOptions(endpoint_url={url!r},"
        + " queue_path='structlog-queue.ndjson'))\n"
        + "client.start()\n"
        + structlog_block
        + "structlog.get_logger().info('pedido_criado', pedido=7)\n"
    ).replace(url, receiver.url)
    result = run_python(code, cwd=str(tmp_path))
    assert 0 == result.returncode, result.stderr
    # delivered at exit (shutdown_timeout_seconds), one event per call
    assert sorted(["disco %d%% cheio", "pedido_criado"]) == sorted(
        event["name"] for event in receiver.events
    )
