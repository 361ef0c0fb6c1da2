"""Offline proof: `orbox serve` in a network namespace with loopback only serves every endpoint, and
strace over the server and all its workers shows no socket call addressed to anything but loopback."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent
_LOCAL = re.compile(r'sa_family=AF_UNIX|sin_addr=inet_addr\("127\.0\.0\.1"\)|inet_pton\(AF_INET6, "::1"')


def test_serve_opens_no_outbound_connection(api_bundle: Path, tmp_path: Path) -> None:
    assert shutil.which("unshare") and shutil.which("strace") and shutil.which("ip")
    command = f"ip link set lo up && exec {sys.executable} -m api_data.offline_probe {api_bundle} {tmp_path}"
    result = subprocess.run(["unshare", "--net", "--", "sh", "-c", command], capture_output=True, text=True,
                            timeout=300, cwd=TESTS)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert [line.split(":")[1].strip() for line in summary["links"]] == ["lo"]  # no way out exists
    assert summary["statuses"] == {"chat": 200, "embeddings": 200, "metrics": 200, "status": 200}
    calls = [line for line in Path(summary["trace"]).read_text().splitlines()
             if re.search(r"\b(connect|bind|sendto|sendmsg)\(", line)]
    binds = [line for line in calls if "bind(" in line and "127.0.0.1" in line]
    assert binds, "the trace must show the API binding 127.0.0.1 (proves strace saw the server)"
    addressed = [line for line in calls if "sa_family=" in line]
    outbound = [line for line in addressed if not _LOCAL.search(line)]
    assert not outbound, "\n".join(outbound[:20])
