"""The demo's clinical scenarios: a triage KB built from the seeded synthetic guidance, served as kb:triage,
then one admission note drafted from a synthetic patient and two complaints triaged (a red flag and a
routine one), printed with what the server did: items dropped, facts restored or unused, rules cited."""

from __future__ import annotations

import shutil
from pathlib import Path

import click
import httpx

TRIAGE_KB = "triage"
SEED = 0


class ScenarioDemoError(click.ClickException):
    """A scenario step of the demo failed; the message says which and why."""


def build_triage_kb(out_dir: Path, bundle: Path, rebuild: bool) -> Path:
    """The synthetic triage rules (zh + en) as a KB next to the bundle."""
    from appliance.scenarios.synthetic import triage_guide, write_guide
    from knowledge_base import KnowledgeBaseError
    from knowledge_base.build import BuildOptions, build_kb

    kb_dir = out_dir / TRIAGE_KB
    click.echo(f"      knowledge base kb:{TRIAGE_KB} from the synthetic triage rules in {kb_dir}")
    if (kb_dir / "manifest.json").is_file() and not rebuild:
        click.echo("      reusing it (--rebuild to make a new one)")
        return kb_dir
    src = out_dir / "triage-src"
    shutil.rmtree(src, ignore_errors=True)
    write_guide(triage_guide(SEED), src)
    shutil.rmtree(kb_dir, ignore_errors=True)
    try:
        build_kb(BuildOptions(src, kb_dir, bundle, dense_languages=("en",), progress=False),
                 warn=lambda line: click.echo(f"        {line}"))
    except KnowledgeBaseError as exc:
        raise ScenarioDemoError(f"building the demo triage knowledge base failed: {exc}") from exc
    return kb_dir


def show(base: str, key: str) -> None:
    """Draft one admission note and triage two complaints through the API, and print what came back."""
    from appliance.scenarios.synthetic import patients, triage_guide

    patient = patients(SEED, 1)[0]
    note = _post(base, key, "/v1/scenarios/admission-note",
                 {"facts": [{"id": fact.id, "text": fact.text} for fact in patient.facts],
                  "language": patient.language})
    click.echo(f"      admission note from {len(patient.facts)} facts (POST /v1/scenarios/admission-note):")
    for section in note["sections"]:
        cites = sorted({fact_id for item in section["items"] for fact_id in item["fact_ids"]})
        click.echo(f"        {section['title']}: {section['text']}" + (f"  [{', '.join(cites)}]" if cites else ""))
    report = note["orbox"]
    click.echo(f"        model output {report['model_output']}; dropped by the checker {len(report['dropped'])}; "
               f"restored verbatim {report['restored']}; unused {[fact['id'] for fact in report['unused_facts']]}")
    guide = triage_guide(SEED)
    for kind in ("red_flag", "routine"):
        complaint = next(c for c in guide.complaints if c.kind == kind and c.language == "en")
        result = _post(base, key, "/v1/scenarios/triage", {"complaint": complaint.text, "language": "en",
                                                           "kb": f"kb:{TRIAGE_KB}"})
        click.echo(f"      triage: {complaint.text!r} -> {result['department']} ({result['urgency']}, decided by "
                   f"{result['decided_by']})")
        rules = {rule["id"]: rule for rule in result["rules"]}
        for item in result["guidance"]:
            citation = rules[item["rule_ids"][0]]["kb_citation"]
            click.echo(f"        {item['text']!r}  [{citation['doc_id']} chars "
                       f"{citation['start_char']}-{citation['end_char']}]")


def _post(base: str, key: str, path: str, body: dict) -> dict:
    response = httpx.post(f"{base}{path}", json=body, timeout=300, headers={"Authorization": f"Bearer {key}"})
    if response.status_code != 200:
        raise ScenarioDemoError(f"{path} failed ({response.status_code}): {response.text}")
    return response.json()
