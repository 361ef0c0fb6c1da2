"""Run inside a fresh network namespace (`unshare -n`): serve, use every endpoint, record the sockets.

Run it from tests/ as `python -m api_data.offline_probe BUNDLE WORKDIR`, so that `api_data` imports.

`orbox serve` runs under strace (seccomp-filtered, following every worker process) with its
connect/bind/sendto/sendmsg calls written to a trace file (clone/execve too, so that a stray lookup
names the process and thread that made it); the test reads the trace and checks that no call
addressed anything but loopback or a local (AF_UNIX) socket. Prints a JSON summary.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from api_data.fixtures import EMBEDDING_MODEL, LLM_MODEL, serve


def main(bundle: Path, work: Path) -> None:
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    trace = work / "strace.txt"
    wrapper = ["strace", "-f", "--seccomp-bpf", "-qq", "-e", "trace=connect,bind,sendto,sendmsg,clone,clone3,execve",
               "-o", str(trace)]
    statuses = {}
    with serve(bundle, work, wrapper=wrapper) as server:
        with server.client() as client:
            statuses["chat"] = client.post("/v1/chat/completions", json={
                "model": LLM_MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "Hello"}]}).status_code
            statuses["embeddings"] = client.post("/v1/embeddings", json={"model": EMBEDDING_MODEL,
                                                                         "input": ["x"]}).status_code
            statuses["metrics"] = client.get("/metrics").status_code
            statuses["status"] = client.get("/status/summary").status_code
        serve_process = next(p for p in psutil.Process(server.process.pid).children() if "orbox" in " ".join(
            p.cmdline()))
        serve_process.send_signal(signal.SIGTERM)  # the server itself, not strace (which would only detach)
        server.process.wait(60)
    print(json.dumps({"links": links.splitlines(), "statuses": statuses, "trace": str(trace)}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
