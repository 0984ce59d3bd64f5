"""Background services: a started service is found by its pid file at once; stop ends its whole group."""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from describer.local.processes import BackgroundService, live_group_members

# A child that starts a grandchild (as the emulator starts Lambda workers), then waits.
_PARENT = (
    "import subprocess, sys, time; "
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
)


def _argv(marker: str) -> list[str]:
    return [sys.executable, "-c", _PARENT, marker]


def _start_and_find(service: BackgroundService, directory: Path) -> int | None:
    service.start(_argv(service.marker), os.environ, directory)
    return service.pid()


def test_services_started_at_once_from_two_threads_are_found_right_away(tmp_path: Path) -> None:
    first = BackgroundService("first", tmp_path, marker="first-service")
    second = BackgroundService("second", tmp_path, marker="second-service")
    try:
        for _ in range(10):
            with ThreadPoolExecutor(max_workers=1) as pool:
                found_first = pool.submit(_start_and_find, first, tmp_path)
                found_second = _start_and_find(second, tmp_path)
                assert found_first.result() is not None
                assert found_second is not None
            first.stop()
            second.stop()
    finally:
        first.stop()
        second.stop()


def test_stop_ends_the_service_and_everything_it_started(tmp_path: Path) -> None:
    service = BackgroundService("svc", tmp_path, marker="svc-marker")
    pid = service.start(_argv("svc-marker"), os.environ, tmp_path)
    for _ in range(200):
        if len(live_group_members(pid)) == 2:
            break
        time.sleep(0.02)
    assert len(live_group_members(pid)) == 2
    stopped = service.stop()
    assert pid in stopped
    assert live_group_members(pid) == []
    assert service.pid() is None
    assert not service.pid_file.exists()
