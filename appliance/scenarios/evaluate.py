"""`orbox scenarios eval`: the issue's targets, measured on seeded synthetic patients and triage guidance.

Drafting runs three scripted writers through the same parse and assembly the API uses:

- faithful: every fact restated verbatim in its section: all facts must be used;
- liar: the faithful draft with one item replaced by each lie of knowledge_base.mutations (number,
  drug, negation, side), one lie per draft: none may be delivered;
- dropper: the faithful draft without its allergy and denial items: all must come back verbatim.

Every scripted output is validated against the request's schema as JSON before assembly. With a
model bundle, the bundle's LLM also drafts every patient through its grammar (the API's path,
in process): schema validity, facts used, the draft time and the time outside the LLM come from
those runs. Triage runs every complaint of the synthetic guidance through a KB built from it with
the bundle's encoder: red flags, clear rules and out-of-scope complaints need no model; the
complaints that name two departments' symptoms are given to a scripted chooser (the right
department, with its rule) and a liar (a department no applying rule names, a diagnosis, a changed
number), whose lies must never be delivered.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from appliance.grounding import Draft
from appliance.llm_generation import schema_grammar
from appliance.scenarios import drafting, triage
from appliance.scenarios.admission_note import ADMISSION_NOTE
from appliance.scenarios.drafting import DraftSpec
from appliance.scenarios.facts import home_section, must_keep
from appliance.scenarios.patient_brief import PATIENT_BRIEF
from appliance.scenarios.synthetic import Complaint, Patient
from knowledge_base.mutations import Mutant, mutants

SPECS = (ADMISSION_NOTE, PATIENT_BRIEF)
HOMES = {
    ADMISSION_NOTE.name: {"complaint": "present_illness", "vital": "physical_exam", "exam": "physical_exam",
                          "lab": "auxiliary_exams", "drug": "past_history", "allergy": "past_history",
                          "family": "family_history", "personal": "personal_history"},
    PATIENT_BRIEF.name: {"complaint": "active_problems", "vital": "active_problems", "exam": "active_problems",
                         "lab": "active_problems", "drug": "treatment", "allergy": "alerts", "denial": "background",
                         "family": "background", "personal": "background"},
}
OTHER_DRUGS = ["阿莫西林", "metoprolol"]
TARGETS = {"schema_valid": 1.0, "lies_delivered": 0, "must_keep_present": 1.0, "facts_accounted": 0.95,
           "outside_llm_p50_ms": 50.0}


@dataclass
class DraftingReport:
    drafts: int = 0
    schema_valid: int = 0
    facts: int = 0
    facts_used: int = 0
    facts_listed_unused: int = 0
    lies: dict[str, int] = field(default_factory=dict)
    lies_delivered: dict[str, int] = field(default_factory=dict)
    must_keep: int = 0
    must_keep_present: int = 0
    truncated: int = 0  # cut off at the token limit; the items completed before the cut were kept
    outside_ms: list[float] = field(default_factory=list)
    draft_s: list[float] = field(default_factory=list)

    def facts_accounted(self) -> float:
        return (self.facts_used + self.facts_listed_unused) / max(1, self.facts)


@dataclass
class TriageEval:
    by_kind: dict[str, list[bool]] = field(default_factory=dict)  # kind -> right department (or none) per complaint
    lies: int = 0
    lies_delivered: int = 0
    diagnoses_delivered: int = 0
    outside_ms: list[float] = field(default_factory=list)


def writer_output(drafts: dict[str, list[Draft]]) -> str:
    return json.dumps({key: [{"text": draft.text, "cites": list(draft.cites)} for draft in items]
                       for key, items in drafts.items()}, ensure_ascii=False)


def faithful(spec: DraftSpec, patient: Patient) -> dict[str, list[Draft]]:
    """Every fact verbatim, in the section a doctor would put it (denials by topic), cited by its id."""
    drafts: dict[str, list[Draft]] = {key: [] for key in spec.sections}
    for fact in patient.facts:
        kind = patient.kinds[fact.id]
        section = home_section(fact) if (kind == "denial" and spec is ADMISSION_NOTE) else HOMES[spec.name][kind]
        drafts[section].append(Draft(fact.text, (fact.id,)))
    return drafts


def scripted_drafts(spec: DraftSpec, patient: Patient) -> Iterator[tuple[str, Mutant | None, dict[str, list[Draft]]]]:
    """(writer, its lie or None, drafts): the faithful draft, one per lie, and the dropper's."""
    honest = faithful(spec, patient)
    yield "faithful", None, honest
    for fact in patient.facts:
        for mutant in mutants(fact.text, fact.text, OTHER_DRUGS):
            drafts = {key: [Draft(mutant.statement, draft.cites) if draft.cites == (fact.id,) else draft
                            for draft in items] for key, items in honest.items()}
            yield "liar", mutant, drafts
    keep = {fact.id for fact in patient.facts if must_keep(fact)}
    yield "dropper", None, {key: [draft for draft in items if draft.cites[0] not in keep]
                            for key, items in honest.items()}


Generate = Callable[[list[dict[str, str]], dict[str, Any]], str]


def evaluate_drafting(patients: list[Patient], generate: Generate | None = None, progress: Callable[[int], Any]
                      = lambda _: None, scripted_writers: bool = True) -> tuple[DraftingReport, DraftingReport]:
    """(scripted writers, the model) reports; the model's is empty without `generate`."""
    scripted, model = DraftingReport(), DraftingReport()
    for patient in patients:
        progress(1)
        language = patient.language
        for spec in SPECS:
            started = time.perf_counter()
            schema = drafting.output_schema(spec, patient.facts, language)
            schema_grammar(schema)  # what the LLM worker compiles for every request
            messages = drafting.prompt_messages(spec, patient.facts, language)
            outside = time.perf_counter() - started
            validator = jsonschema.Draft202012Validator(schema)
            for writer, lie, drafts in scripted_drafts(spec, patient) if scripted_writers else ():
                output = writer_output(drafts)
                started = time.perf_counter()
                note = drafting.assemble(spec, patient.facts, language, drafting.parse(spec, output, patient.facts))
                if writer == "faithful":
                    scripted.outside_ms.append((outside + time.perf_counter() - started) * 1e3)
                valid = validator.is_valid(json.loads(output))
                _score(scripted, patient, note, valid, count_facts=writer == "faithful")
                if lie is not None:
                    scripted.lies[lie.kind] = scripted.lies.get(lie.kind, 0) + 1
                    scripted.lies_delivered[lie.kind] = (scripted.lies_delivered.get(lie.kind, 0)
                                                         + (lie.statement in _delivered(note)))
            if generate is not None:
                began = time.perf_counter()
                output = generate(messages, schema)
                model.draft_s.append(time.perf_counter() - began)
                started = time.perf_counter()
                note = drafting.assemble(spec, patient.facts, language, *drafting.read(spec, output, patient.facts))
                model.truncated += note.model_output == "truncated"
                model.outside_ms.append((outside + time.perf_counter() - started) * 1e3)
                try:
                    valid = validator.is_valid(json.loads(output, strict=False))
                except ValueError:
                    valid = False
                _score(model, patient, note, valid, count_facts=True)
    return scripted, model


def _delivered(note: drafting.ScenarioDraftResult) -> list[str]:
    return [item.text for section in note.sections for item in section.items]


def _score(report: DraftingReport, patient: Patient, note: drafting.ScenarioDraftResult, valid: bool,
           count_facts: bool) -> None:
    report.drafts += 1
    report.schema_valid += valid
    delivered = " ".join(_delivered(note))
    kept = [fact for fact in patient.facts if must_keep(fact)]
    report.must_keep += len(kept)
    report.must_keep_present += sum(" ".join(fact.text.split()) in " ".join(delivered.split()) for fact in kept)
    if count_facts:
        unused = {fact.id for fact in note.unused_facts}
        report.facts += len(patient.facts)
        report.facts_used += len(patient.facts) - len(unused)
        report.facts_listed_unused += len(unused)


def evaluate_triage(kb: Any, complaints: list[Complaint]) -> TriageEval:
    """Every complaint through gather/assemble; ambiguous ones through the scripted chooser and liar."""
    report = TriageEval()
    index = triage.RedFlagIndex(kb)
    for complaint in complaints:
        started = time.perf_counter()
        evidence = triage.gather(kb, index, complaint.text, complaint.language)
        if complaint.kind != "ambiguous":
            result = triage.assemble(evidence, None, False)
            report.outside_ms.append((time.perf_counter() - started) * 1e3)
            report.by_kind.setdefault(complaint.kind, []).append(result.department == complaint.department)
            continue
        honest = _chooser(evidence, complaint.department)
        result = triage.assemble(evidence, triage.parse(json.dumps(honest, ensure_ascii=False), evidence), True)
        # Its first department, or none (the desk decides); never another.
        report.by_kind.setdefault(complaint.kind, []).append(result.department in (complaint.department, None))
        for lie in _liar(evidence, honest):
            report.lies += 1
            lied = triage.assemble(evidence, triage.parse(json.dumps(lie, ensure_ascii=False), evidence), True)
            delivered = {item.text for item in lied.guidance}
            report.lies_delivered += (lied.department not in (None, complaint.department)
                                      or any(item["text"] in delivered for item in lie["guidance"]
                                             if item not in honest["guidance"]))
            report.diagnoses_delivered += sum(triage.DIAGNOSIS.search(text) is not None for text in delivered)
    return report


def _chooser(evidence: triage.TriageEvidence, department: str | None) -> dict[str, Any]:
    """The right answer: the expected department, the rules naming it as applying and quoted."""
    naming = [rule for rule in evidence.rules if department in rule.reading.departments]
    return {"department": department or triage.NO_DEPARTMENT, "applies": [rule.id for rule in naming][:2],
            "guidance": [{"text": rule.sentence.text, "cites": [rule.id]} for rule in naming[:1]]}


def _liar(evidence: triage.TriageEvidence, honest: dict[str, Any]) -> list[dict[str, Any]]:
    """A department named by no rule the liar marks as applying; a diagnosis; a changed number."""
    lies = []
    others = [name for rule in evidence.rules for name in rule.reading.departments
              if name != honest["department"] and not triage.is_emergency(name)]
    if others:
        lies.append({**honest, "department": others[0]})
    if honest["guidance"]:
        cited = honest["guidance"][0]
        diagnosis = {"zh": "考虑为急性胃肠炎。", "en": "This is likely acute gastroenteritis."}[evidence.language]
        lies.append({**honest, "guidance": [{"text": diagnosis, "cites": cited["cites"]}]})
        changed = [mutant.statement for mutant in mutants(cited["text"], cited["text"], OTHER_DRUGS)
                   if mutant.kind == "number"]
        if changed:
            lies.append({**honest, "guidance": [{"text": changed[0], "cites": cited["cites"]}]})
    return lies


def p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def write_json(path: Path, data: dict[str, Any]) -> None:
    from primitives.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def summary(scripted: DraftingReport, model: DraftingReport, triage_eval: TriageEval) -> dict[str, Any]:
    """The numbers `orbox scenarios eval` prints and writes, by name."""
    kinds = {kind: f"{sum(hits)}/{len(hits)}" for kind, hits in sorted(triage_eval.by_kind.items())}
    numbers: dict[str, Any] = {
        "scripted_drafts": scripted.drafts,
        "schema_valid": scripted.schema_valid / max(1, scripted.drafts),
        "lies": dict(sorted(scripted.lies.items())),
        "lies_delivered": sum(scripted.lies_delivered.values()),
        "must_keep_present": scripted.must_keep_present / max(1, scripted.must_keep),
        "facts_accounted": scripted.facts_accounted(),
        "outside_llm_p50_ms": round(p50(scripted.outside_ms), 3),
        "triage_right_department": kinds,
        "triage_lies": triage_eval.lies,
        "triage_lies_delivered": triage_eval.lies_delivered,
        "triage_diagnoses_delivered": triage_eval.diagnoses_delivered,
        "triage_outside_llm_p50_ms": round(p50(triage_eval.outside_ms), 3),
    }
    if model.drafts:
        numbers["model"] = {
            "drafts": model.drafts, "schema_valid": model.schema_valid / model.drafts,
            "truncated": model.truncated / model.drafts,
            "must_keep_present": model.must_keep_present / max(1, model.must_keep),
            "facts_used": model.facts_used / max(1, model.facts), "facts_accounted": model.facts_accounted(),
            "draft_s_p50": round(p50(model.draft_s), 2), "draft_s_max": round(max(model.draft_s), 2),
            "outside_llm_p50_ms": round(p50(model.outside_ms), 3)}
    return numbers


def missed_targets(numbers: dict[str, Any]) -> list[str]:
    """The correctness targets a run missed (the model's too when it ran). Times are printed beside their
    target, not gated: they belong to the machine, not to the method."""
    checks = {"schema_valid": numbers["schema_valid"] >= TARGETS["schema_valid"],
              "lies_delivered": numbers["lies_delivered"] == 0,
              "must_keep_present": numbers["must_keep_present"] >= TARGETS["must_keep_present"],
              "facts_accounted": numbers["facts_accounted"] >= TARGETS["facts_accounted"],
              "triage_lies_delivered": numbers["triage_lies_delivered"] == 0,
              "triage_diagnoses_delivered": numbers["triage_diagnoses_delivered"] == 0}
    if "model" in numbers:
        checks["model.schema_valid"] = numbers["model"]["schema_valid"] >= TARGETS["schema_valid"]
        checks["model.must_keep_present"] = numbers["model"]["must_keep_present"] >= TARGETS["must_keep_present"]
    return [name for name, met in checks.items() if not met]


def table(numbers: dict[str, Any]) -> str:
    """Each number beside its target."""
    rows = [("drafts by the scripted writers", numbers["scripted_drafts"], ""),
            ("valid against their schema", f"{numbers['schema_valid']:.1%}", "100 %"),
            ("lies inserted (by kind)", ", ".join(f"{k} {v}" for k, v in numbers["lies"].items()), ""),
            ("lies delivered", numbers["lies_delivered"], "0"),
            ("allergy/denial facts present", f"{numbers['must_keep_present']:.1%}", "100 %"),
            ("facts used or listed unused", f"{numbers['facts_accounted']:.1%}", ">= 95 %"),
            ("time outside the LLM, p50", f"{numbers['outside_llm_p50_ms']:.1f} ms", "<= 50 ms")]
    model = numbers.get("model")
    if model:
        rows += [("drafts by the bundle's LLM", model["drafts"], ""),
                 ("  valid against their schema", f"{model['schema_valid']:.1%}", "100 %"),
                 ("  cut off at the token limit (items kept)", f"{model['truncated']:.1%}", ""),
                 ("  allergy/denial facts present", f"{model['must_keep_present']:.1%}", "100 %"),
                 ("  facts used by the model", f"{model['facts_used']:.1%}", ""),
                 ("  facts used or listed unused", f"{model['facts_accounted']:.1%}", ">= 95 %"),
                 ("  draft time p50 / max", f"{model['draft_s_p50']:.2f} / {model['draft_s_max']:.2f} s", "report"),
                 ("  time outside the LLM, p50", f"{model['outside_llm_p50_ms']:.1f} ms", "<= 50 ms")]
    rows += [("triage: right department (by kind)",
              ", ".join(f"{k} {v}" for k, v in numbers["triage_right_department"].items()), ""),
             ("triage: lies delivered", f"{numbers['triage_lies_delivered']} of {numbers['triage_lies']}", "0"),
             ("triage: diagnoses delivered", numbers["triage_diagnoses_delivered"], "0"),
             ("triage: time without a model, p50", f"{numbers['triage_outside_llm_p50_ms']:.1f} ms", "")]
    width = max(len(name) for name, _, _ in rows)
    lines = [f"{'measure':<{width}}  {'value':<28}  target"]
    lines += [f"{name:<{width}}  {value!s:<28}  {target}" for name, value, target in rows]
    return "\n".join(lines)
