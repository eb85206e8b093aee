"""Where the SDK's once-per-condition warnings go, in fresh interpreters.

Each case runs a script whose queue path lies under a file (unusable even
for root), so the client warns at construction and counts every event as
an ``io_error`` drop; the test reads the script's stderr.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_python

UNUSABLE = """
import json, logging, logging.config, sys
blocker = sys.argv[1]
open(blocker, "w").close()
queue = blocker + "/queue/telemetry.ndjson"
{setup}
from trace_telemetry import TelemetryClient, TelemetryOptions
client = TelemetryClient(TelemetryOptions(queue_path=queue))
for _ in range(3):
    client.track("lost")
print(json.dumps(client.stats()["dropped"]))
"""

HEADLINE = "trace_telemetry cannot write its queue at"


def run_case(tmp_path: Path, setup: str) -> subprocess.CompletedProcess:
    result = run_python(UNUSABLE.format(setup=setup), str(tmp_path / "a-file"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"io_error": 3}  # tracking went on, counting drops
    return result


def test_no_logging_configuration_prints_to_stderr(tmp_path: Path) -> None:
    result = run_case(tmp_path, "")
    lines = result.stderr.splitlines()
    assert len([line for line in lines if HEADLINE in line]) == 1
    headline = next(line for line in lines if HEADLINE in line)
    assert str(tmp_path / "a-file") in headline  # names the path
    assert "Not a directory" in headline  # and the OS error
    assert len([line for line in lines if "dropped 1 event(s): io_error" in line]) == 1


def test_a_root_telemetry_handler_alone_still_lets_them_reach_stderr(tmp_path: Path) -> None:
    setup = """
from trace_telemetry import TelemetryHandler
logging.config.dictConfig({
    "version": 1,
    "handlers": {"telemetry": {"class": "trace_telemetry.TelemetryHandler",
                               "queue_path": sys.argv[1] + ".d/handler.ndjson"}},
    "root": {"handlers": ["telemetry"], "level": "INFO"},
})
"""
    result = run_case(tmp_path, setup)
    assert HEADLINE in result.stderr
    assert "dropped 1 event(s): io_error" in result.stderr
    handler_queue = tmp_path / "a-file.d" / "handler.ndjson"
    recorded = handler_queue.read_text() if handler_queue.exists() else ""
    assert "trace_telemetry" not in recorded  # the handler still skips them


def test_an_app_routing_them_elsewhere_gets_them_there_only(tmp_path: Path) -> None:
    log_file = tmp_path / "app.log"
    setup = f"""
logging.basicConfig(filename={str(log_file)!r}, level=logging.INFO)
"""
    result = run_case(tmp_path, setup)
    assert result.stderr == ""
    assert HEADLINE in log_file.read_text()


def test_a_level_on_the_sdk_logger_silences_them(tmp_path: Path) -> None:
    result = run_case(tmp_path, 'logging.getLogger("trace_telemetry").setLevel(logging.ERROR)')
    assert result.stderr == ""


def test_a_handler_on_the_sdk_logger_gets_them_and_stderr_does_not(tmp_path: Path) -> None:
    setup = """
captured = []
class Keep(logging.Handler):
    def emit(self, record):
        captured.append(record.getMessage())
sdk = logging.getLogger("trace_telemetry")
sdk.addHandler(Keep())
sdk.propagate = False
import atexit
atexit.register(lambda: print(json.dumps(captured), file=sys.stderr))
"""
    result = run_case(tmp_path, setup)
    captured = json.loads(result.stderr)
    assert any(HEADLINE in message for message in captured)


def read_only_folder(tmp_path: Path) -> Path:
    """A folder where this process cannot create files.

    Root ignores permission bits, so as root it is sysfs, where nobody may
    create files.
    """
    if os.geteuid() == 0:
        return Path("/sys/fs")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    return folder


@pytest.mark.skipif(sys.platform != "linux", reason="needs Linux's sysfs or POSIX modes")
def test_a_read_only_folder_is_reported_at_construction(tmp_path: Path) -> None:
    queue = read_only_folder(tmp_path) / "telemetry-queue.ndjson"
    code = (
        "import json, sys\n"
        "from trace_telemetry import TelemetryClient, TelemetryOptions\n"
        "client = TelemetryClient(TelemetryOptions(queue_path=sys.argv[1]))\n"
        "client.track('lost')\n"
        "print(json.dumps(client.stats()['dropped']))\n"
    )
    result = run_python(code, str(queue))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"io_error": 1}
    assert f"{HEADLINE} {queue}" in result.stderr
    assert "Permission denied" in result.stderr
    assert not queue.exists()
