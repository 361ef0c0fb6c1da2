"""The patient brief (患者简报) for a ward round or a handover: a one-line summary, then what the next
doctor needs (problems, treatment, alerts, what is pending), only from the facts."""

from __future__ import annotations

from appliance.scenarios.drafting import DraftSpec
from appliance.scenarios.facts import Fact, must_keep


def _home(fact: Fact) -> str:
    """A restored allergy goes under alerts, a denied history under background."""
    return "alerts" if must_keep(fact) == "allergy" else "background"


PATIENT_BRIEF = DraftSpec(
    name="patient_brief",
    sections={
        "summary": {"zh": "概要", "en": "Summary"},
        "active_problems": {"zh": "当前问题", "en": "Active problems"},
        "treatment": {"zh": "治疗与用药", "en": "Treatment and medication"},
        "alerts": {"zh": "过敏与警示", "en": "Allergies and alerts"},
        "background": {"zh": "背景", "en": "Background"},
        "pending": {"zh": "待办", "en": "Pending"},
    },
    headline_chars={"zh": 40, "en": 120},
    instructions={
        "zh": ("你是交班助手。仅根据下面编号的事实写一份患者简报，分为：{sections}。每条内容注明其依据的事实编号；"
               "不得加入事实中没有的任何内容（不作诊断，不给建议）；没有事实的部分留空。\n\n"),
        "en": ("You write handover briefs. Using only the numbered facts below, write a patient brief in the "
               "sections {sections}. Give every item the ids of the facts it rests on; add nothing the facts do "
               "not say (no diagnosis, no advice); leave a section empty when no fact belongs to it.\n\n"),
    },
    request={"zh": "请根据以上事实写患者简报。", "en": "Write the patient brief from these facts."},
    home=_home,
)

