"""The deployment recipes of docs/deployment.md, run in real servers.

Each server runs as a subprocess from the very files the page includes
(``docs/examples``), serving on a Unix socket, and sends
to a real receiver on 127.0.0.1. Every subprocess is bounded by a timeout.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from trace_telemetry._receiver import Receiver

from ._servers import Server, children, console_script, get, require, wait_for
from .conftest import ROOT, read_lines, run_python

EXAMPLES = ROOT / "docs" / "examples"
APPS = Path(__file__).resolve().parent / "apps"


@pytest.fixture
def sock() -> Iterator[Path]:
    """A Unix socket path short enough for AF_UNIX (108 bytes), whatever tmp_path is."""
    folder = Path(tempfile.mkdtemp(prefix="tt-"))
    yield folder / "server.sock"
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def servers() -> Iterator[List[Server]]:
    started: List[Server] = []
    yield started
    for server in started:
        server.kill()


def server_env(receiver: Receiver, workdir: Path, **extra: str) -> Dict[str, str]:
    """Examples importable, telemetry to the receiver, the queue in ``workdir``."""
    path = [str(EXAMPLES), str(APPS), str(ROOT), os.environ.get("PYTHONPATH", "")]
    return dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(p for p in path if p),
        TELEMETRY_URL=receiver.url,
        TELEMETRY_QUEUE=str(workdir / "queue" / "telemetry-queue.ndjson"),
        HOME=str(workdir),  # recent gunicorn puts a control socket under ~/.gunicorn
        **extra,
    )


def names(receiver: Receiver) -> List[str]:
    return sorted(str(event["name"]) for event in receiver.events)


# -- gunicorn ----------------------------------------------------------------------


class TestGunicorn:
    @pytest.mark.parametrize("preload", [False, True], ids=["fork-then-load", "preload"])
    def test_the_example_config_boots_and_sends_app_and_gunicorn_errors(
        self,
        preload: bool,
        receiver: Receiver,
        tmp_path: Path,
        sock: Path,
        servers: List[Server],
    ) -> None:
        require("gunicorn")
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(EXAMPLES / "gunicorn.conf.py"),
            "-b",
            f"unix:{sock}",
            "--timeout",
            "20",
            *(["--preload"] if preload else []),
            "wsgi_app:app",
        ]
        server = Server(argv, tmp_path, server_env(receiver, tmp_path))
        servers.append(server)
        server.wait_for_output("Booting worker")
        wait_for(sock.exists, 30, "the socket")
        statuses = [get(sock, path) for path in ("/disk", "/pay", "/broken", "/")]
        assert [200, 200, 500, 200] == statuses
        assert 0 == server.stop()
        # At exit each process sent what was queued: nothing waits for a next run.
        assert ["disk %d%% full", "exception", "payment %s declined"] == names(receiver)
        assert [] == read_lines(tmp_path / "queue" / "telemetry-queue.ndjson")
        by_name = {event["name"]: event["data"] for event in receiver.events}
        assert "myapp" == by_name["disk %d%% full"]["logger"]
        assert "gunicorn.error" == by_name["exception"]["logger"]
        assert "out of stock" == by_name["exception"]["message"]
        # gunicorn's own error log is still on stderr, the app's records too.
        stderr = server.stderr
        assert "Listening at: unix:" in stderr
        assert "Error handling request" in stderr
        assert "RuntimeError: out of stock" in stderr
        assert "disk 91% full" in stderr
        assert "Unable to configure" not in stderr
        assert "GET /disk" in server.stdout  # the access log, on stdout as by default

    def test_events_of_a_worker_killed_with_sigkill_are_sent_by_the_others(
        self, receiver: Receiver, tmp_path: Path, sock: Path, servers: List[Server]
    ) -> None:
        require("gunicorn")
        argv = [sys.executable, "-m", "gunicorn", "-c", str(EXAMPLES / "gunicorn.conf.py")]
        server = Server(
            [*argv, "-b", f"unix:{sock}", "wsgi_app:app"], tmp_path, server_env(receiver, tmp_path)
        )
        servers.append(server)
        server.wait_for_output("Booting worker")
        wait_for(sock.exists, 30, "the socket")
        assert [200] * 6 == [get(sock, "/disk") for _ in range(6)]
        wait_for(lambda: len(children(server.process.pid)) == 2, 30, "two workers")
        workers = children(server.process.pid)
        for pid in workers:
            os.kill(pid, signal.SIGKILL)  # no exit code runs in them
        wait_for(lambda: len(set(children(server.process.pid)) - set(workers)) == 2, 30, "respawn")
        assert 0 == server.stop()
        app_events = [e for e in receiver.events if e["data"]["logger"] == "myapp"]
        assert ["disk %d%% full"] * 6 == [e["name"] for e in app_events]
        # The master's error about each kill is an event too (OOM kills show up).
        kills = [e for e in receiver.events if e["data"]["logger"] == "gunicorn.error"]
        assert sorted(f"Worker (pid:{pid}) was sent SIGKILL!" for pid in workers) == sorted(
            e["data"]["message"].split(" Perhaps")[0] for e in kills
        )
        assert [] == read_lines(tmp_path / "queue" / "telemetry-queue.ndjson")

    def test_the_worker_config_for_user_sends_from_the_workers(
        self, receiver: Receiver, tmp_path: Path, sock: Path, servers: List[Server]
    ) -> None:
        require("gunicorn")
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(EXAMPLES / "gunicorn_user.conf.py"),
            "-b",
            f"unix:{sock}",
            "wsgi_app:app",
        ]
        server = Server(argv, tmp_path, server_env(receiver, tmp_path))
        servers.append(server)
        server.wait_for_output("Booting worker")
        wait_for(sock.exists, 30, "the socket")
        # A worker runs post_worker_init before it accepts its first request.
        assert [200, 500] == [get(sock, "/disk"), get(sock, "/broken")]
        assert 0 == server.stop()
        assert ["disk %d%% full", "exception"] == names(receiver)
        assert "Error handling request" in server.stderr

    @pytest.mark.skipif(os.geteuid() != 0, reason="--user needs a root master")
    def test_the_example_config_warns_when_workers_switch_user(
        self, receiver: Receiver, tmp_path: Path, sock: Path, servers: List[Server]
    ) -> None:
        require("gunicorn")
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(EXAMPLES / "gunicorn.conf.py"),
            "-b",
            f"unix:{sock}",
            "--user",
            "65534",
            "--group",
            "65534",
            "wsgi_app:app",
        ]
        server = Server(argv, tmp_path, server_env(receiver, tmp_path))
        servers.append(server)
        server.wait_for_output("configure telemetry in the workers instead")
        server.stop()
        assert "workers run as uid 65534 but the queue files belong to uid 0" in server.stderr


# -- uvicorn, Starlette lifespan ----------------------------------------------------


class TestUvicorn:
    def test_the_lifespan_sends_what_is_queued_when_uvicorn_stops_on_sigterm(
        self, receiver: Receiver, tmp_path: Path, sock: Path, servers: List[Server]
    ) -> None:
        require("uvicorn", "starlette")
        argv = [sys.executable, "-m", "uvicorn", "--uds", str(sock), "asgi_app:app"]
        server = Server(argv, tmp_path, server_env(receiver, tmp_path))
        servers.append(server)
        server.wait_for_output("Application startup complete")
        assert [200] * 20 == [get(sock, f"/buy/sku-{n}") for n in range(20)]
        # SIGTERM is what Docker, Kubernetes and systemd send; uvicorn re-raises
        # it after the lifespan shutdown, so atexit never runs.
        returncode = server.stop(signal.SIGTERM)
        assert ["purchase"] * 20 == names(receiver), returncode
        assert -signal.SIGTERM == returncode
        assert [] == read_lines(tmp_path / "queue" / "telemetry-queue.ndjson")
        assert "Application shutdown complete" in server.stderr

    def test_without_the_lifespan_send_sigterm_leaves_events_queued_for_the_next_run(
        self, receiver: Receiver, tmp_path: Path, sock: Path, servers: List[Server]
    ) -> None:
        require("uvicorn", "starlette")
        env = server_env(receiver, tmp_path)
        argv = [sys.executable, "-m", "uvicorn", "--uds", str(sock)]
        first = Server([*argv, "asgi_no_flush:app"], tmp_path, env)
        servers.append(first)
        first.wait_for_output("Application startup complete")
        assert [200] * 5 == [get(sock, f"/buy/sku-{n}") for n in range(5)]
        first.stop(signal.SIGTERM)
        assert [] == names(receiver)  # the sender's first tick never came
        queue = tmp_path / "queue" / "telemetry-queue.ndjson"
        assert 5 == len(read_lines(queue))  # not lost: queued

        second_dir = tmp_path / "second"
        second_dir.mkdir()
        second = Server([*argv, "asgi_app:app"], second_dir, env)
        servers.append(second)
        second.wait_for_output("Application startup complete")
        second.stop(signal.SIGTERM)
        assert ["purchase"] * 5 == names(receiver)


# -- Celery prefork -----------------------------------------------------------------


class TestCelery:
    def test_prefork_children_send_in_worker_process_shutdown(
        self, receiver: Receiver, tmp_path: Path, servers: List[Server]
    ) -> None:
        require("celery")
        broker = tmp_path / "broker"
        broker.mkdir()
        (tmp_path / "celeryconfig.py").write_text(
            'broker_url = "filesystem://"\n'
            f"broker_transport_options = {{'data_folder_in': {str(broker)!r}, "
            f"'data_folder_out': {str(broker)!r}, 'control_folder': {str(broker)!r}}}\n"
        )
        env = server_env(receiver, tmp_path)
        env["PYTHONPATH"] = str(tmp_path) + os.pathsep + env["PYTHONPATH"]
        produced = run_python(
            "import celery_app; celery_app.charge.delay('inv-1'); celery_app.refund.delay('inv-2')",
            env=env,
            cwd=str(tmp_path),
            timeout=60,
        )
        assert 0 == produced.returncode, produced.stderr
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "celery_app",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            "2",
            "--max-tasks-per-child",
            "1",  # each child leaves (with os._exit) after one task
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        server = Server(argv, tmp_path, env)
        servers.append(server)
        server.wait_for_output("raised unexpected: ValueError('no payment for inv-2')")
        server.wait_for_output("celery_app.charge[")
        # The children sent before leaving; the main process's first tick is
        # flush_interval_seconds (10 s) away and it is still running.
        wait_for(lambda: len(task_events(receiver)) == 2, 8, "the children's events")
        assert server.process.poll() is None
        assert 0 == server.stop(signal.SIGTERM)
        assert ["exception", "invoice %s overdue"] == sorted(
            e["name"] for e in task_events(receiver)
        )
        (failure,) = [e for e in task_events(receiver) if e["name"] == "exception"]
        assert "no payment for inv-2" == failure["data"]["message"]
        assert [] == read_lines(tmp_path / "queue" / "telemetry-queue.ndjson")


def task_events(receiver: Receiver) -> List[Dict[str, object]]:
    """The events the tasks caused (kombu warns about filesystem:// having no host)."""
    with receiver.lock:
        return [e for e in receiver.events if e["data"]["logger"] != "kombu.connection"]


# -- Django -------------------------------------------------------------------------


class TestDjango:
    def test_the_logging_setting_sends_view_errors_and_app_warnings(
        self, receiver: Receiver, tmp_path: Path
    ) -> None:
        require("django")
        env = server_env(receiver, tmp_path, DJANGO_SETTINGS_MODULE="django_site")
        code = (
            "import django; django.setup()\n"
            "from django.test import Client\n"
            "browser = Client(raise_request_exception=False)\n"
            "print(browser.get('/orders/7').status_code, browser.get('/orders/13').status_code)\n"
        )
        result = run_python(code, env=env, cwd=str(tmp_path), timeout=60)
        assert 0 == result.returncode, result.stderr
        assert "200 500" == result.stdout.strip()
        # Sent when the interpreter exited (logging.shutdown closes the handler).
        assert ["exception", "order %s is late"] == names(receiver)
        (failure,) = [e for e in receiver.events if e["name"] == "exception"]
        assert "django.request" == failure["data"]["logger"]
        assert "Internal Server Error: /orders/13" == failure["data"]["logMessage"]
        assert "unlucky order" == failure["data"]["message"]
        assert "Internal Server Error: /orders/13" in result.stderr  # the console handler


# -- uWSGI --------------------------------------------------------------------------


class TestUwsgi:
    def test_the_ini_runs_the_sender_in_the_workers_and_sends_at_shutdown(
        self, receiver: Receiver, tmp_path: Path, sock: Path, servers: List[Server]
    ) -> None:
        # uWSGI is a test dependency (built from source by pip): missing, it fails.
        argv = [
            console_script("uwsgi"),
            "--ini",
            str(EXAMPLES / "uwsgi.ini"),
            "--http-socket",
            str(sock),
            "--virtualenv",
            sys.prefix,
        ]
        server = Server(argv, tmp_path, server_env(receiver, tmp_path))
        servers.append(server)
        server.wait_for_output("spawned uWSGI worker 2")
        wait_for(sock.exists, 30, "the socket")
        assert [200, 200] == [get(sock, "/disk"), get(sock, "/pay")]
        # The background sender runs (enable-threads): sent on its first tick,
        # flush_interval_seconds (10 s) after start, while the server runs.
        wait_for(lambda: len(receiver.events) == 2, 30, "the first tick")
        assert server.process.poll() is None
        assert 200 == get(sock, "/disk")
        # die-on-term: SIGTERM stops uWSGI; each worker runs Python's atexit
        # functions, logging.shutdown among them, which sends what is queued.
        assert 0 == server.stop(signal.SIGTERM)
        assert ["disk %d%% full", "disk %d%% full", "payment %s declined"] == names(receiver)
        assert [] == read_lines(tmp_path / "queue" / "telemetry-queue.ndjson")
        assert "goodbye to uWSGI" in server.stderr
