"""`python -m appliance.api.bench --bundle DIR`: streaming through the box's HTTP API vs llama-cpp-python direct.

Same GGUF (the bundle's, sha256-checked), same settings as the LLM worker (profile context, batch,
threads, cores, seed, temperature 0), same prompt. Prints, side by side:

- streaming decode tokens/s, direct vs through `orbox serve` + SSE (goal: HTTP >= 0.97 x direct);
- time to first token, direct vs HTTP, and the difference (goal: <= 5 ms overhead);
- aggregate tokens/s through HTTP with 1 client vs N concurrent clients (goal: N=4 >= 2 x one).

Medians over --runs. The numbers are wall-clock on a shared machine: run it on an idle box.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import click
import httpx

from appliance.llm_worker import DEFAULT_SEED

PROMPT = "Question: What should the team check before insufflation? Answer:"


@dataclass
class Run:
    ttft_s: float
    tokens: int
    decode_s: float
    text: str

    @property
    def tokens_per_s(self) -> float:
        return (self.tokens - 1) / self.decode_s if self.tokens > 1 and self.decode_s > 0 else 0.0


def _direct_runs(gguf: Path, profile, runs: int, max_tokens: int) -> list[Run]:
    """llama-cpp-python in this process, pinned and configured like the LLM worker."""
    from llama_cpp import Llama

    llm_spec = profile.llm
    cores = [c for c in profile.cpu.llm_cores if c in os.sched_getaffinity(0)] or sorted(os.sched_getaffinity(0))
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        threads = max(1, min(llm_spec.threads, len(cores)))
        llm = Llama(model_path=str(gguf), n_ctx=llm_spec.context_length, n_batch=llm_spec.batch, n_threads=threads,
                    n_threads_batch=threads, seed=DEFAULT_SEED, n_gpu_layers=profile.accelerators.llm_gpu_layers,
                    verbose=False)
        llm.create_completion("warm up", max_tokens=1, temperature=0.0)
        results = []
        for _ in range(runs + 1):  # the first run warms caches and is dropped
            began = time.perf_counter()
            first, pieces = None, []
            for chunk in llm.create_completion(PROMPT, max_tokens=max_tokens, temperature=0.0, seed=DEFAULT_SEED,
                                               stream=True):
                text = chunk["choices"][0].get("text")
                if text:
                    first = first or time.perf_counter()
                    pieces.append(text)
            end = time.perf_counter()
            results.append(Run(first - began, len(pieces), end - first, "".join(pieces)))
        del llm
        return results[1:]
    finally:
        os.sched_setaffinity(0, previous)


def _http_run(client: httpx.Client, model: str, max_tokens: int) -> Run:
    body = {"model": model, "prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0, "stream": True}
    began = time.perf_counter()
    first, pieces = None, []
    with client.stream("POST", "/v1/completions", json=body) as response:
        if response.status_code != 200:
            raise click.ClickException(f"HTTP {response.status_code}: {response.read().decode()[:300]}")
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            text = json.loads(line[6:])["choices"][0].get("text")
            if text:
                first = first or time.perf_counter()
                pieces.append(text)
    end = time.perf_counter()
    return Run(first - began, len(pieces), end - first, "".join(pieces))


def _aggregate(url: str, key: str, model: str, clients: int, max_tokens: int) -> float:
    """Total tokens/s of `clients` concurrent streams, each generating max_tokens."""
    totals: list[int] = []

    def one() -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=300) as client:
            totals.append(_http_run(client, model, max_tokens).tokens)

    threads = [threading.Thread(target=one) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(totals) / (time.perf_counter() - began)


class _Server:
    """`orbox serve` with only the LLM worker, on a free port, with a throw-away key."""

    def __init__(self, bundle: Path, profile: str, work: Path):
        from appliance.api.keys import KeyStore

        self.key = KeyStore(work / "keys.json").add("bench")
        zone = work / "sys" / "thermal_zone0"  # a cool board: the bench measures serving, not throttling
        zone.mkdir(parents=True)
        (zone / "temp").write_text("40000\n")
        config = work / "site.toml"
        config.write_text(f'[supervisor]\nstate_dir = "{work / "state"}"\nworkers = ["llm"]\n'
                          f'critical_workers = ["llm"]\n\n[thermal]\nsysfs_root = "{work / "sys"}"\n'
                          'use_psutil = false\n')
        self.log = open(work / "serve.log", "w+")  # closed in stop()
        self.process = subprocess.Popen([sys.executable, "-m", "orbox", "serve", "--profile", profile, "--bundle",
                                         str(bundle), "--config", str(config), "--port", "0", "--keys",
                                         str(work / "keys.json")], stderr=self.log, stdout=subprocess.DEVNULL)
        self.url = self._wait_url(work / "serve.log")

    def _wait_url(self, log_path: Path) -> str:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise click.ClickException(f"orbox serve exited ({self.process.returncode}); see {log_path}")
            found = re.search(r"API on (http://\S+)", log_path.read_text())
            if found:
                with httpx.Client(base_url=found.group(1), headers={"Authorization": f"Bearer {self.key}"}) as c:
                    if c.get("/health/ready").status_code == 200:
                        return found.group(1)
            time.sleep(0.2)
        raise click.ClickException(f"orbox serve was not ready within 180s; see {log_path}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self.log.close()


@click.command("api-bench")
@click.option("--bundle", "bundle_dir", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Bundle with the GGUF to serve (e.g. out/demo/bundle from `orbox demo`).")
@click.option("--profile", "profile_name", default="dev", show_default=True, help="Hardware profile.")
@click.option("--tokens", "max_tokens", default=256, show_default=True, type=click.IntRange(8, 4096))
@click.option("--runs", default=5, show_default=True, type=click.IntRange(1, 100))
@click.option("--clients", default=4, show_default=True, type=click.IntRange(2, 64))
def api_bench(bundle_dir: Path, profile_name: str, max_tokens: int, runs: int, clients: int) -> None:
    """Streaming tokens/s and TTFT through HTTP vs llama-cpp-python direct; 1 vs N clients."""
    from appliance.bundle import ArtifactRefused, checked_llm_gguf
    from hw_profiles import ProfileError, load_profile

    try:
        profile = load_profile(profile_name)
        artifact = checked_llm_gguf(bundle_dir, list(profile.llm.gguf_types))
    except (ProfileError, ArtifactRefused) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"GGUF {artifact.relpath} ({artifact.entry.get('quant_type')}, sha256 {artifact.sha256[:16]}…), "
               f"profile {profile.name}, {max_tokens} tokens, median of {runs} runs", err=True)
    direct = _direct_runs(artifact.path, profile, runs, max_tokens)
    with tempfile.TemporaryDirectory(prefix="orbox-api-bench-") as work:
        server = _Server(bundle_dir, profile.name, Path(work))
        try:
            headers = {"Authorization": f"Bearer {server.key}"}
            with httpx.Client(base_url=server.url, headers=headers, timeout=300) as client:
                model = next(m["id"] for m in client.get("/v1/models").json()["data"] if m["role"] == "llm")
                _http_run(client, model, max_tokens)  # warm-up
                http = [_http_run(client, model, max_tokens) for _ in range(runs)]
            one = statistics.median(_aggregate(server.url, server.key, model, 1, max_tokens) for _ in range(runs))
            many = statistics.median(_aggregate(server.url, server.key, model, clients, max_tokens)
                                     for _ in range(max(1, runs // 2)))
        finally:
            server.stop()
    d_tps, h_tps = (statistics.median(r.tokens_per_s for r in rs) for rs in (direct, http))
    d_ttft, h_ttft = (statistics.median(r.ttft_s for r in rs) * 1e3 for rs in (direct, http))
    same = {r.text for r in direct} == {r.text for r in http}
    click.echo(f"{'':34}{'direct':>12}{'HTTP':>12}{'HTTP/direct':>14}  goal")
    click.echo(f"{'streaming decode tokens/s':34}{d_tps:12.1f}{h_tps:12.1f}{h_tps / d_tps:14.3f}  >= 0.97")
    click.echo(f"{'time to first token (ms)':34}{d_ttft:12.2f}{h_ttft:12.2f}{h_ttft - d_ttft:+13.2f}ms  <= +5 ms")
    click.echo(f"{'tokens per run':34}{direct[0].tokens:12d}{http[0].tokens:12d}{'':14}  same text: "
               f"{'yes' if same else 'NO'}")
    click.echo(f"{'aggregate tokens/s via HTTP':34}{'1 client':>12}{f'{clients} clients':>12}{'ratio':>14}")
    click.echo(f"{'':34}{one:12.1f}{many:12.1f}{many / one:14.2f}  >= 2.0 (4 clients)")


if __name__ == "__main__":
    api_bench()
