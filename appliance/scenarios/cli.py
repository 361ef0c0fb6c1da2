"""`orbox scenarios eval`: the clinical scenarios' targets on seeded synthetic patients and triage guidance.

Prints each number beside its target; `--report` writes them as JSON. Nothing printed holds a fact
or a complaint (they are synthetic, but the habit is the box's).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from appliance.scenarios import evaluate, synthetic


@click.group()
def scenarios() -> None:
    """Clinical scenarios: admission notes, patient briefs, triage guidance."""


@scenarios.command("eval")
@click.option("--bundle", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Model bundle: its encoder builds the triage KB, its LLM drafts (unless --no-llm).")
@click.option("--llm-bundle", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Model bundle whose LLM drafts instead of --bundle's (e.g. a larger model with no encoder).")
@click.option("--profile", "profile_name", default="dev", show_default=True, help="Box profile (name or TOML).")
@click.option("--patients", default=40, show_default=True, type=click.IntRange(min=1, max=1000),
              help="Synthetic patients (alternating zh and en).")
@click.option("--llm-patients", default=6, show_default=True, type=click.IntRange(min=0, max=1000),
              help="How many of them the bundle's LLM drafts (each drafts an admission note and a brief).")
@click.option("--seed", default=0, show_default=True, help="Seed of the synthetic patients and guidance.")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the numbers as JSON here too.")
def eval_command(bundle: Path, llm_bundle: Path | None, profile_name: str, patients: int, llm_patients: int,
                 seed: int, report: Path | None) -> None:
    """Schema validity, lies delivered, allergies/denials kept, facts accounted for, time outside the LLM, triage."""
    from hw_profiles import ProfileError, load_profile

    try:
        profile = load_profile(profile_name)
    except ProfileError as exc:
        raise click.ClickException(f"--profile {profile_name}: {exc}") from exc
    cohort = synthetic.patients(seed, patients)
    generate = _bundle_llm(llm_bundle or bundle, profile) if llm_patients else None
    with click.progressbar(length=len(cohort), label="drafting (scripted writers)",
                           file=click.get_text_stream("stderr")) as bar:
        scripted, _ = evaluate.evaluate_drafting(cohort, None, progress=bar.update)
    model = evaluate.DraftingReport()
    if generate is not None:
        with click.progressbar(length=min(llm_patients, len(cohort)), label="drafting (the bundle's LLM)",
                               file=click.get_text_stream("stderr")) as bar:
            _, model = evaluate.evaluate_drafting(cohort[:llm_patients], generate, progress=bar.update,
                                                    scripted_writers=False)
    triage_report = _triage(bundle, profile, seed)
    numbers = evaluate.summary(scripted, model, triage_report)
    click.echo(evaluate.table(numbers))
    if report is not None:
        evaluate.write_json(report, numbers)
    failed = evaluate.missed_targets(numbers)
    if failed:
        raise click.ClickException("targets missed: " + ", ".join(failed))


def _bundle_llm(bundle: Path, profile: Any) -> Callable[[list[dict[str, str]], dict[str, Any]], str]:
    """The bundle's LLM as the API runs it: grammar from the schema, temperature 0, the fixed seed."""
    from llama_cpp import Llama

    from appliance.llm_generation import Generation, PrefillCache
    from appliance.model_bundle import checked_llm_gguf
    from appliance.scenarios.drafting import MAX_TOKENS
    from primitives.artifacts import ModelBundleError

    try:
        artifact = checked_llm_gguf(bundle, list(profile.llm.gguf_types))
    except ModelBundleError as exc:
        raise click.ClickException(f"--llm-bundle/--bundle {bundle}: {exc}") from exc
    llm = Llama(model_path=str(artifact.path), n_ctx=profile.llm.context_length, n_batch=profile.llm.batch,
                n_threads=profile.llm.threads, n_threads_batch=profile.llm.threads, verbose=False)

    def generate(messages: list[dict[str, str]], schema: dict[str, Any]) -> str:
        params = {"messages": messages, "max_tokens": MAX_TOKENS, "temperature": 0.0,
                  "response_format": {"type": "json_object", "schema": schema}}
        generation = Generation(llm, "chat", params, 0, PrefillCache())
        pieces, finish = [], None
        while finish is None:
            text, finish = generation.step()
            pieces.append(text)
        generation.close()
        return "".join(pieces)

    return generate


def _triage(bundle: Path, profile: Any, seed: int) -> evaluate.TriageEval:
    from knowledge_base import KnowledgeBase, KnowledgeBaseError
    from knowledge_base.build import BuildOptions, build_kb

    guide = synthetic.triage_guide(seed)
    with tempfile.TemporaryDirectory(prefix="orbox-triage-eval-") as work:
        root = Path(work)
        synthetic.write_guide(guide, root / "src")
        try:
            build_kb(BuildOptions(root / "src", root / "kb", bundle, profile=profile, progress=False,
                                  dense_languages=("en",)), warn=lambda _: None)
            with KnowledgeBase.open(root / "kb", profile) as kb:
                return evaluate.evaluate_triage(kb, guide.complaints)
        except KnowledgeBaseError as exc:
            raise click.ClickException(f"--bundle {bundle}: the triage KB could not be built ({exc})") from exc
