"""Log records from processes that share one stderr, as ``proxy serve --workers`` does.

Under systemd every process of a unit writes to the same journal stream, which splits
records at newlines; a record written in two pieces can get another process's record
between them, and both are lost to a reader of JSON lines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

RECORDS = 3000

LOGGING_PROCESS = f"""
import sys
from wsproxy_agent import logs
logs.configure("json")
log = logs.get("test")
for i in range({RECORDS}):
    log.info("record", writer=sys.argv[1], i=i)
"""


def test_records_of_processes_sharing_stderr_stay_whole_lines(tmp_path: Path) -> None:
    # Unbuffered stderr, as PYTHONUNBUFFERED=1 in a unit's Environment= makes it, writes
    # whatever it is given at once: a record must be given in one piece.
    shared = tmp_path / "stderr"
    with shared.open("ab") as stderr:
        writers = [
            subprocess.Popen(
                [sys.executable, "-c", LOGGING_PROCESS, str(n)],
                stderr=stderr,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            for n in range(2)
        ]
    assert [w.wait(timeout=60) for w in writers] == [0, 0]
    lines = shared.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert sorted((r["writer"], r["i"]) for r in records) == [
        (str(n), i) for n in range(2) for i in range(RECORDS)
    ]
