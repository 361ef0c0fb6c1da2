"""`python -m appliance.bench_api --bundle DIR`: streaming through the box's HTTP API vs llama-cpp-python direct.

Same GGUF (the bundle's, sha256-checked), same settings as the LLM worker (profile context, batch,
threads, cores, seed, temperature 0), same prompt. Prints, side by side:

- streaming decode tokens/s and time to first token for three paths: llama-cpp-python's own
  `create_completion(stream=True)`, the box's generation loop (`appliance.llm_generation`, what the
  LLM worker runs) called directly in this process, and the same loop through `orbox serve` + SSE.
  The goals (HTTP >= 0.97 x direct tokens/s, <= 5 ms TTFT overhead) are judged against the box's
  loop: it isolates the process hop and HTTP, while llama-cpp-python's streaming re-detokenizes
  the whole completion per token and is far slower on small models;
- aggregate tokens/s through HTTP with 1 client vs N concurrent clients (goal: N=4 >= 2 x one),
  beside the ceiling raw llama.cpp reaches when it decodes N sequences per batch on the same cores.

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


def _timed(generate) -> Run:
    """Time one generation; `generate` yields (text, tokens so far) and returns when done."""
    began = time.perf_counter()
    first, pieces, tokens = None, [], 0
    for text, count in generate():
        tokens = count
        if text:
            first = first or time.perf_counter()
            pieces.append(text)
    end = time.perf_counter()
    return Run(first - began, tokens, end - first, "".join(pieces))


def _direct_runs(gguf: Path, profile, runs: int, max_tokens: int) -> tuple[list[Run], list[Run]]:
    """In this process, pinned and configured like the LLM worker: (llama-cpp-python's own streaming
    completion, the worker's generation loop `appliance.llm_generation` without process or HTTP)."""
    from llama_cpp import Llama

    from appliance.llm_generation import Generation

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

        def library():
            count = 0
            for chunk in llm.create_completion(PROMPT, max_tokens=max_tokens, temperature=0.0, seed=DEFAULT_SEED,
                                               stream=True):
                text = chunk["choices"][0].get("text")
                count += bool(text)
                yield text, count

        def engine():
            generation = Generation(llm, "completion", {"prompt": PROMPT, "max_tokens": max_tokens,
                                                        "temperature": 0.0}, DEFAULT_SEED)
            while True:
                text, finish = generation.step()
                yield text, len(generation.completion)
                if finish:
                    return

        results = ([_timed(library) for _ in range(runs + 1)][1:],  # the first run of each warms caches
                   [_timed(engine) for _ in range(runs + 1)][1:])
        llm.close()
        return results
    finally:
        os.sched_setaffinity(0, previous)


def _decode(ctx, batch, items: list[tuple[int, int, int, bool]]) -> None:
    """One llama_decode of (sequence, token, position, wants logits) items."""
    import llama_cpp

    batch.n_tokens = 0
    for seq, token, position, logits in items:
        i = batch.n_tokens
        batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, position, 1
        batch.seq_id[i][0], batch.logits[i] = seq, logits
        batch.n_tokens += 1
    if llama_cpp.llama_decode(ctx, batch) != 0:
        raise click.ClickException("llama_decode failed in the batching probe")


def _batched_decode_ceiling(gguf: Path, profile, sequences: int, steps: int = 128) -> dict[int, float]:
    """Aggregate greedy decode tokens/s of raw llama.cpp batches of 1 and of `sequences` sequences.

    The upper bound continuous batching could reach on this GGUF and core set (no sampling, no
    detokenization, no IPC): what the 1-vs-N HTTP figure should be judged against.
    """
    import llama_cpp
    import numpy as np
    from llama_cpp import Llama

    cores = [c for c in profile.cpu.llm_cores if c in os.sched_getaffinity(0)] or sorted(os.sched_getaffinity(0))
    threads = max(1, min(profile.llm.threads, len(cores)))
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    llm = Llama(model_path=str(gguf), n_ctx=256, n_threads=threads, verbose=False)  # tokenizer and weights
    prompt = llm.tokenize(PROMPT.encode())
    rates = {}
    try:
        for count in (1, sequences):
            params = llama_cpp.llama_context_default_params()
            params.n_ctx, params.n_batch, params.n_ubatch = (len(prompt) + steps + 8) * count, 512, 512
            params.n_seq_max, params.n_threads, params.n_threads_batch = count, threads, threads
            ctx = llama_cpp.llama_init_from_model(llm.model, params)
            batch = llama_cpp.llama_batch_init(max(512, len(prompt) * count), 0, count)
            try:
                prefill = [(s, t, p, p == len(prompt) - 1) for s in range(count) for p, t in enumerate(prompt)]
                _decode(ctx, batch, prefill)
                rows = [(s + 1) * len(prompt) - 1 for s in range(count)]
                began = time.perf_counter()
                for step in range(steps):
                    nexts = [int(np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, row),
                                                       shape=(llm.n_vocab(),)).argmax()) for row in rows]
                    _decode(ctx, batch, [(s, token, len(prompt) + step, True) for s, token in enumerate(nexts)])
                    rows = list(range(count))
                rates[count] = count * steps / (time.perf_counter() - began)
            finally:
                llama_cpp.llama_batch_free(batch)
                llama_cpp.llama_free(ctx)
    finally:
        llm.close()
        os.sched_setaffinity(0, previous)
    return rates


def _http_run(client: httpx.Client, model: str, max_tokens: int) -> Run:
    body = {"model": model, "prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}

    def generate():
        with client.stream("POST", "/v1/completions", json=body) as response:
            if response.status_code != 200:
                raise click.ClickException(f"HTTP {response.status_code}: {response.read().decode()[:300]}")
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    chunk = json.loads(line[6:])
                    text = chunk["choices"][0].get("text") if chunk["choices"] else None
                    yield text, (chunk.get("usage") or {}).get("completion_tokens", 0)

    return _timed(generate)


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
    from appliance.model_bundle import checked_llm_gguf
    from hw_profiles import ProfileError, load_profile
    from primitives.artifacts import ModelBundleError

    try:
        profile = load_profile(profile_name)
        artifact = checked_llm_gguf(bundle_dir, list(profile.llm.gguf_types))
    except (ProfileError, ModelBundleError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"GGUF {artifact.relpath} ({artifact.entry.get('quant_type')}, sha256 {artifact.sha256[:16]}…), "
               f"profile {profile.name}, {max_tokens} tokens, median of {runs} runs", err=True)
    library, engine = _direct_runs(artifact.path, profile, runs, max_tokens)
    ceiling = _batched_decode_ceiling(artifact.path, profile, clients)
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
    rows = {"llama-cpp-python": library, "box engine": engine, "HTTP": http}
    tps = {name: statistics.median(r.tokens_per_s for r in rs) for name, rs in rows.items()}
    ttft = {name: statistics.median(r.ttft_s for r in rs) * 1e3 for name, rs in rows.items()}
    click.echo(f"{'':28}{'llama-cpp-python':>18}{'box engine':>12}{'HTTP':>10}   HTTP vs engine (goal)")
    click.echo(f"{'streaming tokens/s':28}{tps['llama-cpp-python']:18.1f}{tps['box engine']:12.1f}{tps['HTTP']:10.1f}"
               f"   x{tps['HTTP'] / tps['box engine']:.3f} (>= 0.97)")
    click.echo(f"{'time to first token ms':28}{ttft['llama-cpp-python']:18.2f}{ttft['box engine']:12.2f}"
               f"{ttft['HTTP']:10.2f}   {ttft['HTTP'] - ttft['box engine']:+.2f} ms (<= +5)")
    click.echo(f"{'tokens per run':28}{library[0].tokens:18d}{engine[0].tokens:12d}{http[0].tokens:10d}"
               f"   same text as engine: {'yes' if engine[0].text == http[0].text else 'NO'}")
    click.echo(f"{'aggregate tokens/s (HTTP)':28}{'1 client':>18}{f'{clients} clients':>12}{'ratio':>10}")
    click.echo(f"{'':28}{one:18.1f}{many:12.1f}{many / one:10.2f}   (goal >= 2.0)")
    click.echo(f"{'llama.cpp batched decode':28}{ceiling[1]:18.1f}{ceiling[clients]:12.1f}"
               f"{ceiling[clients] / ceiling[1]:10.2f}   (ceiling for continuous batching)")

if __name__ == "__main__":
    api_bench()
