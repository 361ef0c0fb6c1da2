"""Seeded synthetic patients and triage guidance for `orbox scenarios eval`, the tests and the demo.

Patients: the facts a doctor dictates at admission, in Chinese or English: complaints with
durations, vital signs and laboratory values with units, drugs with doses, examination findings
with a side, allergies and denied history (the facts a draft must never lose), family and
personal history. Nothing is a real person; the seed picks values, phrasings and which facts a
patient has.

Triage guidance: one rules document per language for a fictional hospital (department names are
built from place names, so the department cannot come from a model's training): routing rules
that send symptoms to departments, department notes with numbers, and red-flag rules that send
symptom pairs to the emergency department. Each complaint knows its expected department; an
out-of-scope complaint names symptoms no rule mentions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from appliance.scenarios.facts import Fact

PLACES = [("Amber", "琥珀"), ("Cedar", "雪松"), ("Linden", "椴树"), ("Harbor", "海港"), ("Juniper", "杜松"),
          ("Willow", "柳岸"), ("Granite", "花岗"), ("Meadow", "草甸")]
SPECIALTIES = [("Heart Clinic", "心脏门诊"), ("Digestive Clinic", "消化内科"), ("Skin Clinic", "皮肤科"),
               ("Nerve Clinic", "神经内科"), ("Lung Clinic", "呼吸内科"), ("Joint Clinic", "骨关节科"),
               ("Kidney Clinic", "肾内科"), ("Eye Clinic", "眼科")]
SYMPTOMS = {  # by specialty index: (en, zh) symptoms the rules route there
    0: [("palpitations", "心悸"), ("ankle swelling", "下肢水肿")],
    1: [("abdominal pain", "腹痛"), ("diarrhoea", "腹泻")],
    2: [("rash", "皮疹"), ("itching", "瘙痒")],
    3: [("dizziness", "头晕"), ("numbness", "麻木")],
    4: [("cough", "咳嗽"), ("wheezing", "喘息")],
    5: [("joint pain", "关节痛"), ("back pain", "腰痛")],
    6: [("frothy urine", "泡沫尿"), ("facial swelling", "颜面水肿")],
    7: [("blurred vision", "视物模糊"), ("eye redness", "眼红")],
}
RED_FLAG_PAIRS = [(("chest pain", "胸痛"), ("sweating", "大汗")),
                  (("sudden headache", "突发头痛"), ("vomiting", "呕吐")),
                  (("shortness of breath", "呼吸困难"), ("blue lips", "口唇发绀")),
                  (("vomiting blood", "呕血"), ("fainting", "晕厥")),
                  (("one-sided weakness", "单侧肢体无力"), ("slurred speech", "言语不清"))]
OUT_OF_SCOPE = [("toothache", "牙痛"), ("hair loss", "脱发"), ("hoarse voice", "声音嘶哑"), ("ear ringing", "耳鸣")]
ROUTING = {"en": ["Patients with {a} or {b} should attend the {dept}.",
                  "Refer patients presenting with {a} or {b} to the {dept}.",
                  "Send patients who report {a} or {b} to the {dept}."],
           "zh": ["{a}或{b}的患者请前往{dept}就诊。", "出现{a}或{b}者，分诊至{dept}。", "主诉{a}、{b}者挂{dept}。"]}
NOTES = {"en": ["Patients for the {dept} should bring results from the last {n} months.",
                "The {dept} sees walk-in patients until {h}:00."],
         "zh": ["{dept}就诊请携带近{n}个月的检查结果。", "{dept}接诊无预约患者至{h}点。"]}
RED_FLAG = {"en": "Patients with {a} and {b} must be sent to the {ed} immediately.",
            "zh": "{a}伴{b}者，立即送{ed}。"}
DURATIONS = {"en": ["for {n} days", "since yesterday", "for {n} hours"], "zh": ["{n}天", "1天", "{n}小时"]}


@dataclass(frozen=True)
class Complaint:
    id: str
    language: str
    text: str
    kind: str  # routine, red_flag, out_of_scope, ambiguous (symptoms of two departments)
    department: str | None  # the expected one (None: the triage desk decides; ambiguous: the first's)


@dataclass(frozen=True)
class Patient:
    id: str
    language: str
    facts: list[Fact]
    kinds: dict[str, str]  # fact id -> what it states (complaint, vital, lab, drug, exam, allergy, denial, ...)


@dataclass(frozen=True)
class TriageGuide:
    documents: dict[str, str]  # relative path -> markdown
    complaints: list[Complaint]


def triage_guide(seed: int = 0, departments: int = 6) -> TriageGuide:
    """One rules document per language and complaints of each kind with their expected department."""
    rng = random.Random(seed)
    places = rng.sample(PLACES, k=departments + 1)
    chosen = rng.sample(range(len(SPECIALTIES)), k=departments)
    ed = places[-1]
    documents, complaints = {}, []
    for language in ("en", "zh"):
        column = 0 if language == "en" else 1
        ed_name = f"{ed[0]} Emergency Department" if language == "en" else f"{ed[1]}急诊科"
        lines = [f"# {'Triage rules' if language == 'en' else '分诊规则'}", ""]
        names = {specialty: f"{place[0]} {SPECIALTIES[specialty][0]}" if language == "en" else
                 f"{place[1]}{SPECIALTIES[specialty][1]}" for place, specialty in zip(places, chosen, strict=False)}
        for specialty, dept in names.items():
            a, b = (symptom[column] for symptom in SYMPTOMS[specialty])
            lines += [f"## {dept}", "", rng.choice(ROUTING[language]).format(a=a, b=b, dept=dept) + " " * (
                language == "en") + rng.choice(NOTES[language]).format(dept=dept, n=rng.choice([3, 6, 12]),
                                                                       h=rng.choice([11, 16, 17])), ""]
            for symptom in (a, b):
                complaints.append(Complaint(f"{language}-{len(complaints):03d}", language,
                                            _complaint(rng, language, symptom), "routine", dept))
        for first, second in zip(chosen[::2], chosen[1::2], strict=False):  # symptoms of two departments
            a, b = SYMPTOMS[first][0][column], SYMPTOMS[second][0][column]
            joined = f"{a}{' and ' if language == 'en' else '伴'}{b}"
            complaints.append(Complaint(f"{language}-{len(complaints):03d}", language,
                                        _complaint(rng, language, joined), "ambiguous", names[first]))
        lines += [f"## {'Red flags' if language == 'en' else '红旗征象'}", ""]
        for first, second in RED_FLAG_PAIRS:
            lines.append(RED_FLAG[language].format(a=first[column], b=second[column], ed=ed_name))
            joined = f"{first[column]}{' and ' if language == 'en' else '伴'}{second[column]}"
            complaints.append(Complaint(f"{language}-{len(complaints):03d}", language,
                                        _complaint(rng, language, joined), "red_flag", ed_name))
        lines.append("")
        for symptom in OUT_OF_SCOPE:
            complaints.append(Complaint(f"{language}-{len(complaints):03d}", language,
                                        _complaint(rng, language, symptom[column]), "out_of_scope", None))
        documents[f"triage/{language}/rules.md"] = "\n".join(lines)
    return TriageGuide(documents, complaints)


def _complaint(rng: random.Random, language: str, symptom: str) -> str:
    duration = rng.choice(DURATIONS[language]).format(n=rng.randint(2, 9))
    return f"{symptom[0].upper()}{symptom[1:]} {duration}." if language == "en" else f"{symptom}{duration}。"


def write_guide(guide: TriageGuide, src_dir: Path) -> None:
    for relpath, text in guide.documents.items():
        path = src_dir / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------- patients

ZH_FACTS = {
    "complaint": ["{s}{n}天", "反复{s}{n}月，加重{m}天"],
    "vital": ["体温{t}℃，脉搏{p}次/分，血压{sys}/{dia} mmHg"],
    "lab": ["白细胞{w}×10^9/L，中性粒细胞{ne}%", "血红蛋白{hb} g/L", "肌酐{cr} μmol/L"],
    "drug": ["长期口服{d}{dose} mg，每日{f}次"],
    "exam": ["{side}下腹压痛，无反跳痛", "{side}肺呼吸音减低"],
    "allergy": ["对{a}过敏，表现为{r}", "否认药物及食物过敏史"],
    "denial": ["否认高血压、糖尿病病史", "否认结核、肝炎等传染病史", "否认吸烟饮酒史", "否认家族遗传病史"],
    "family": ["父亲患高血压", "母亲有糖尿病史"],
    "personal": ["吸烟{y}年，每日{c}支", "已婚，育有{k}子"],
}
EN_FACTS = {
    "complaint": ["{s} for {n} days", "Recurrent {s} for {n} months, worse for {m} days"],
    "vital": ["Temperature {t} °C, pulse {p}/min, blood pressure {sys}/{dia} mmHg"],
    "lab": ["White cell count {w} x10^9/L, neutrophils {ne}%", "Haemoglobin {hb} g/L", "Creatinine {cr} umol/L"],
    "drug": ["Takes {d} {dose} mg {f} times daily"],
    "exam": ["Tenderness in the {side} lower abdomen, no rebound", "Reduced breath sounds on the {side}"],
    "allergy": ["Allergic to {a} ({r})", "No known drug or food allergies"],
    "denial": ["Denies hypertension and diabetes", "Denies tuberculosis and hepatitis", "Denies smoking and alcohol",
               "No known family history of hereditary disease"],
    "family": ["Father has hypertension", "Mother has diabetes"],
    "personal": ["Smoked for {y} years, {c} cigarettes a day", "Married with {k} children"],
}
VALUES = {"s": [("abdominal pain", "腹痛"), ("fever", "发热"), ("cough", "咳嗽"), ("chest tightness", "胸闷")],
          "d": [("metformin", "二甲双胍"), ("amlodipine", "氨氯地平"), ("atorvastatin", "阿托伐他汀")],
          "a": [("penicillin", "青霉素"), ("sulfonamides", "磺胺类药物"), ("iodine contrast", "碘造影剂")],
          "r": [("rash", "皮疹"), ("hives", "荨麻疹"), ("wheezing", "喘息")],
          "side": [("left", "左"), ("right", "右")]}


def patients(seed: int = 0, count: int = 40) -> list[Patient]:
    """`count` patients, alternating zh and en, each with 6-12 facts of which one or two must be kept."""
    rng = random.Random(seed)
    result = []
    for index in range(count):
        language = ("zh", "en")[index % 2]
        templates = ZH_FACTS if language == "zh" else EN_FACTS
        kinds = ["complaint", "vital", "allergy", "denial"] + rng.sample(
            ["lab", "lab", "drug", "exam", "denial", "family", "personal", "complaint"], k=rng.randint(2, 8))
        texts = {_fill(rng, rng.choice(templates[kind]), language): kind for kind in kinds}  # a repeat counts once
        facts = [Fact(f"f{n}", text) for n, text in enumerate(texts, 1)]
        result.append(Patient(f"p{index:03d}", language, facts, {fact.id: texts[fact.text] for fact in facts}))
    return result


def _fill(rng: random.Random, template: str, language: str) -> str:
    column = 0 if language == "en" else 1
    numbers = {"n": rng.randint(2, 9), "m": rng.randint(1, 5), "t": f"{rng.uniform(36.5, 39.8):.1f}",
               "p": rng.randint(58, 118), "sys": rng.randint(100, 175), "dia": rng.randint(60, 105),
               "w": f"{rng.uniform(3.5, 18.0):.1f}", "ne": rng.randint(45, 92), "hb": rng.randint(82, 160),
               "cr": rng.randint(50, 180), "dose": rng.choice([5, 10, 20, 500, 850]), "f": rng.randint(1, 3),
               "y": rng.randint(3, 30), "c": rng.choice([5, 10, 20]), "k": rng.randint(1, 3)}
    words = {key: rng.choice(options)[column] for key, options in VALUES.items()}
    text = template.format(**numbers, **words)
    return text[0].upper() + text[1:]
