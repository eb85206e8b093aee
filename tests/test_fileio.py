"""Private files: created 0600 in 0700 folders, even when threads race to create them."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import List

from trace_telemetry import _fileio


class TestOpenPrivate:
    def test_a_missing_folder_is_created_0700_and_the_file_0600(self, tmp_path: Path) -> None:
        path = tmp_path / "a" / "b" / "q.ndjson"
        os.close(_fileio.open_private(str(path), os.O_RDWR))
        assert 0o600 == stat.S_IMODE(path.stat().st_mode)
        assert 0o700 == stat.S_IMODE(path.parent.stat().st_mode)

    def test_threads_creating_files_in_one_missing_folder_all_succeed(self, tmp_path: Path) -> None:
        # Each round, eight threads create files in a folder none of them made
        # yet: one thread's open fails (no folder) while another creates it.
        errors: List[BaseException] = []
        for round_index in range(40):
            folder = tmp_path / str(round_index) / "queue"
            barrier = threading.Barrier(8)

            def create(
                index: int, folder: Path = folder, barrier: threading.Barrier = barrier
            ) -> None:
                barrier.wait()
                try:
                    os.close(_fileio.open_private(str(folder / f"f{index % 3}"), os.O_RDWR))
                except BaseException as error:
                    errors.append(error)

            threads = [threading.Thread(target=create, args=(index,)) for index in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(10)
        assert [] == errors
