"""The admission note (入院记录): the sections of 《病历书写基本规范》, 主诉 at most 20 characters."""

from __future__ import annotations

from appliance.scenarios.drafting import DraftSpec
from appliance.scenarios.facts import home_section

ADMISSION_NOTE = DraftSpec(
    name="admission_note",
    sections={
        "chief_complaint": {"zh": "主诉", "en": "Chief complaint"},
        "present_illness": {"zh": "现病史", "en": "History of present illness"},
        "past_history": {"zh": "既往史", "en": "Past history (allergies included)"},
        "personal_history": {"zh": "个人史", "en": "Personal history"},
        "marital_history": {"zh": "婚育史", "en": "Marital and reproductive history"},
        "family_history": {"zh": "家族史", "en": "Family history"},
        "physical_exam": {"zh": "体格检查", "en": "Physical examination"},
        "auxiliary_exams": {"zh": "辅助检查", "en": "Investigations"},
        "diagnosis": {"zh": "初步诊断", "en": "Provisional diagnosis"},
    },
    headline_chars={"zh": 20, "en": 80},  # the standard's 20 characters are Chinese ones
    instructions={
        "zh": ("你是病历书写助手。仅根据下面编号的事实书写入院记录，按《病历书写基本规范》分为：{sections}。"
               "每条内容注明其依据的事实编号；不得加入事实中没有的任何内容；没有事实的部分留空。主诉不超过20字。\n\n"),
        "en": ("You draft admission notes. Using only the numbered facts below, write the note in the sections "
               "{sections}. Give every item the ids of the facts it rests on; add nothing the facts do not say; "
               "leave a section empty when no fact belongs to it. The chief complaint is one short phrase.\n\n"),
    },
    request={"zh": "请根据以上事实书写入院记录。", "en": "Draft the admission note from these facts."},
    home=home_section,
)
