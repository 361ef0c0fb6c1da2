"""A seeded synthetic hospital corpus in Chinese and English, with questions whose answers are known.

Everything is fictional (drug, disease and department names are built from syllables), so no test
depends on downloaded data and no answer can come from a model's training. Documents are drug
handbook entries (doses with units, renal limits, contraindications, interactions phrased as
negations), guidelines (left/right procedures, negated steps) and department rules, written as
.md, .html, .docx and .txt. Every fact is one sentence; each question names the document and the
exact sentence that answers it. Unanswerable questions ask about drugs and departments that the
corpus does not contain. The templates are general; the seed picks names, numbers and phrasings.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

# (en, zh) pairs, so both languages describe comparable facts.
DRUG_HEADS = [("Zor", "佐"), ("Vel", "维"), ("Quin", "奎"), ("Tal", "塔"), ("Mir", "米"), ("Dex", "德"), ("Lor", "洛"),
              ("Fen", "芬"), ("Cal", "卡"), ("Nor", "诺"), ("Bre", "布"), ("Sul", "苏"), ("Xan", "赞"), ("Pra", "普"),
              ("Ter", "特"), ("Vox", "沃"), ("Kel", "凯"), ("Rho", "罗"), ("Sim", "辛"), ("Oru", "欧")]
DRUG_MIDDLES = [("a", "阿"), ("o", "奥"), ("i", "伊"), ("e", "依"), ("u", "乌"), ("ari", "瑞"), ("ene", "恩"),
                ("ol", "尔")]
DRUG_TAILS = [("vastin", "伐他汀"), ("tinib", "替尼"), ("mab", "单抗"), ("pril", "普利"), ("zolam", "唑仑"),
              ("cillin", "西林"), ("sartan", "沙坦"), ("olol", "洛尔"), ("prazole", "拉唑"), ("floxacin", "沙星"),
              ("dronate", "膦酸"), ("mycin", "霉素")]
DISEASE_HEADS = [("Karv", "卡文"), ("Ostel", "奥斯特"), ("Brenn", "布伦"), ("Maru", "马鲁"), ("Tessing", "泰辛"),
                 ("Ilvan", "伊尔万"), ("Dorr", "多尔"), ("Quell", "奎尔"), ("Sabin", "萨宾"), ("Hollin", "霍林")]
DISEASE_KINDS = [("syndrome", "综合征"), ("disease", "病"), ("fever", "热"), ("myopathy", "肌病"),
                 ("arteritis", "动脉炎"), ("cyst", "囊肿")]
DEPARTMENT_PLACES = [("Amber", "琥珀"), ("Cedar", "雪松"), ("Linden", "椴树"), ("Harbor", "海港"),
                     ("Juniper", "杜松"), ("Willow", "柳岸"), ("Granite", "花岗"), ("Meadow", "草甸")]
DEPARTMENT_KINDS = [("Surgical Unit", "外科病区"), ("Recovery Unit", "复苏室"), ("Endoscopy Suite", "内镜中心"),
                    ("Day Surgery Centre", "日间手术中心")]
UNITS = [("mg", "mg"), ("mcg", "μg"), ("mg/kg", "mg/kg"), ("units", "单位")]
FREQUENCIES = [("once daily", "每日一次"), ("twice daily", "每日两次"), ("every 8 hours", "每8小时一次"),
               ("every 12 hours", "每12小时一次")]
EFFECTS = [("headache", "头痛"), ("nausea", "恶心"), ("dizziness", "头晕"), ("rash", "皮疹"), ("insomnia", "失眠"),
           ("dry mouth", "口干"), ("fatigue", "乏力")]
PROCEDURES = [("laparoscopic drainage", "腹腔镜引流术"), ("open resection", "开放切除术"),
              ("endoscopic clipping", "内镜下夹闭术"), ("percutaneous biopsy", "经皮穿刺活检"),
              ("robotic excision", "机器人辅助切除术")]
SIDES = [("left", "左"), ("right", "右")]
ENTRY_RULES = [("wear a surgical mask", "佩戴外科口罩"), ("perform hand hygiene", "进行手卫生"),
               ("register at the nurse station", "在护士站登记"), ("change into clean shoes", "更换清洁鞋")]
FORMATS = ("md", "html", "docx", "txt")


@dataclass(frozen=True)
class Sentence:
    text: str
    kind: str  # the fact it states ("dose", "renal", ...) or "filler"


@dataclass
class Section:
    heading: str
    sentences: list[Sentence]


@dataclass
class SyntheticDocument:
    relpath: str
    lang: str
    title: str
    sections: list[Section]


@dataclass(frozen=True)
class Question:
    """One qrel: `answer` is the exact sentence in `doc_id` that answers it (None when unanswerable)."""

    id: str
    lang: str
    kind: str
    query: str
    answerable: bool
    doc_id: str | None = None
    answer: str | None = None


@dataclass
class Corpus:
    documents: list[SyntheticDocument] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)


class _Names:
    """Unique fictional names per language, drawn by the seeded generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def _unique(self, parts: list[list[tuple[str, str]]], en_join: str, zh_join: str = "") -> tuple[str, str]:
        for _ in range(1000):
            picked = [self.rng.choice(options) for options in parts]
            en = en_join.join(p[0] for p in picked)
            en = en[0].upper() + en[1:]
            zh = zh_join.join(p[1] for p in picked)
            if en not in self.used and zh not in self.used:
                self.used.update((en, zh))
                return en, zh
        raise ValueError("ran out of distinct fictional names; lower the counts")

    def drug(self) -> tuple[str, str]:
        return self._unique([DRUG_HEADS, DRUG_MIDDLES, DRUG_TAILS], "")

    def disease(self) -> tuple[str, str]:
        return self._unique([DISEASE_HEADS, DISEASE_KINDS], " ")

    def department(self) -> tuple[str, str]:
        return self._unique([DEPARTMENT_PLACES, DEPARTMENT_KINDS], " ")


def _dose(rng: random.Random) -> tuple[str, str, str, str]:
    """(amount, en unit, zh unit, renal maximum): amounts as a clinician writes them (2.5, 40, 500)."""
    amount = rng.choice(["0.5", "2.5", "5", "10", "20", "40", "75", "150", "250", "500"])
    unit_en, unit_zh = rng.choice(UNITS)
    return amount, unit_en, unit_zh, str(int(float(amount) * rng.choice([2, 3, 4])))


def _drug_document(rng: random.Random, lang: str, index: int, drug: tuple[str, str], diseases: list[tuple[str, str]],
                   other_drug: tuple[str, str], questions: list[Question]) -> SyntheticDocument:
    en = lang == "en"
    name = drug[0] if en else drug[1]
    treated, excluded = rng.sample(diseases, 2)
    amount, unit_en, unit_zh, maximum = _dose(rng)
    unit = unit_en if en else unit_zh
    freq = rng.choice(FREQUENCIES)
    effect = rng.choice(EFFECTS)
    other = other_drug[0] if en else other_drug[1]
    side = 0 if en else 1
    t, x, e, f = treated[side], excluded[side], effect[side], freq[side]
    doc_id = f"handbook/{lang}/drug-{index:04d}.{FORMATS[index % len(FORMATS)]}"
    if en:
        facts = {
            "dose": (f"The adult dose of {name} for {t} is {amount} {unit} {f}.",
                     [f"What is the adult dose of {name} for {t}?", f"How much {name} should an adult with {t} get?"]),
            "renal": (f"In renal impairment the daily dose of {name} must not exceed {maximum} {unit}.",
                      [f"What is the maximum daily dose of {name} in renal impairment?"]),
            "contraindication": (f"{name} is contraindicated in patients with {x}.",
                                 [f"In which patients is {name} contraindicated?", f"Who must not receive {name}?"]),
            "interaction": (f"Do not give {name} together with {other}.",
                            [f"Can {name} be given together with {other}?"]),
            "adverse": (f"The most common adverse effect of {name} is {e}.",
                        [f"What is the most common adverse effect of {name}?"]),
        }
        filler = [f"Store {name} below 25 °C and protect it from light.",
                  f"Record every dose of {name} in the medication chart."]
        headings = ["Indications and dosage", "Contraindications and interactions", "Adverse effects and storage"]
    else:
        facts = {
            "dose": (f"{name}治疗{t}的成人剂量为{amount}{unit}，{f}。",
                     [f"{name}治疗{t}的成人剂量是多少？", f"成人{t}患者应使用多少{name}？"]),
            "renal": (f"肾功能不全时{name}每日剂量不得超过{maximum}{unit}。",
                      [f"肾功能不全患者{name}每日最大剂量是多少？"]),
            "contraindication": (f"{x}患者禁用{name}。", [f"哪些患者禁用{name}？", f"{name}的禁忌症是什么？"]),
            "interaction": (f"{name}不得与{other}同时使用。", [f"{name}能否与{other}合用？"]),
            "adverse": (f"{name}最常见的不良反应是{e}。", [f"{name}最常见的不良反应是什么？"]),
        }
        filler = [f"{name}应在25 °C以下避光保存。", f"每次给予{name}均须记录在用药单上。"]
        headings = ["适应症与用法用量", "禁忌与相互作用", "不良反应与贮存"]
    layout = [["dose", "renal"], ["contraindication", "interaction"], ["adverse"]]
    sections = [Section(heading, [Sentence(facts[kind][0], kind) for kind in kinds])
                for heading, kinds in zip(headings, layout, strict=True)]
    sections[0].sentences.insert(0, Sentence(filler[1], "filler"))
    sections[2].sentences.append(Sentence(filler[0], "filler"))
    for kind, (sentence, phrasings) in facts.items():
        questions.append(Question(f"{doc_id}#{kind}", lang, kind, rng.choice(phrasings), True, doc_id, sentence))
    return SyntheticDocument(doc_id, lang, name, sections)


def _guideline_document(rng: random.Random, lang: str, index: int, disease: tuple[str, str],
                        questions: list[Question]) -> SyntheticDocument:
    en = lang == "en"
    name = disease[0] if en else disease[1]
    left_proc, right_proc, banned = rng.sample(PROCEDURES, 3)
    doc_id = f"guidelines/{lang}/guideline-{index:04d}.{('html', 'md')[index % 2]}"
    sentences = []
    for side, procedure in zip(SIDES, (left_proc, right_proc), strict=True):
        if en:
            text = f"For {side[0]}-sided {name}, the first-line procedure is {procedure[0]}."
            query = f"What is the first-line procedure for {side[0]}-sided {name}?"
        else:
            text = f"{side[1]}侧{name}的首选术式为{procedure[1]}。"
            query = f"{side[1]}侧{name}首选什么术式？"
        sentences.append(Sentence(text, f"laterality-{side[0]}"))
        questions.append(Question(f"{doc_id}#{side[0]}", lang, "laterality", query, True, doc_id, text))
    if en:
        text = f"Do not perform {banned[0]} in patients with {name} before imaging."
        query = f"Should {banned[0]} be done before imaging in {name}?"
        title, heading = f"Guideline: {name}", "Surgical management"
    else:
        text = f"{name}患者在影像学检查前不得行{banned[1]}。"
        query = f"{name}患者影像学检查前可以做{banned[1]}吗？"
        title, heading = f"{name}诊疗指南", "外科处理"
    sentences.append(Sentence(text, "negation"))
    questions.append(Question(f"{doc_id}#negation", lang, "negation", query, True, doc_id, text))
    return SyntheticDocument(doc_id, lang, title, [Section(heading, sentences)])


def _department_document(rng: random.Random, lang: str, index: int, department: tuple[str, str],
                         questions: list[Question]) -> SyntheticDocument:
    en = lang == "en"
    name = department[0] if en else department[1]
    rule = rng.choice(ENTRY_RULES)
    nurses = rng.choice([2, 3, 4])
    fasting = rng.choice([4, 6, 8])
    doc_id = f"rules/{lang}/department-{index:04d}.{('txt', 'docx')[index % 2]}"
    if en:
        facts = [("entry", f"Visitors to the {name} must {rule[0]} before entry.",
                  f"What must visitors do before entering the {name}?"),
                 ("count", f"In the {name}, the instrument count is done by {nurses} nurses.",
                  f"How many nurses perform the instrument count in the {name}?"),
                 ("fasting", f"Patients in the {name} fast for {fasting} hours before surgery.",
                  f"How long do patients in the {name} fast before surgery?")]
        title, heading = f"{name} rules", "Rules"
    else:
        facts = [("entry", f"{name}探视者进入前必须{rule[1]}。", f"进入{name}前探视者必须做什么？"),
                 ("count", f"{name}的器械清点由{nurses}名护士完成。", f"{name}器械清点需要几名护士？"),
                 ("fasting", f"{name}患者术前禁食{fasting}小时。", f"{name}患者术前禁食多久？")]
        title, heading = f"{name}管理制度", "制度"
    for kind, text, query in facts:
        questions.append(Question(f"{doc_id}#{kind}", lang, kind, query, True, doc_id, text))
    return SyntheticDocument(doc_id, lang, title, [Section(heading, [Sentence(t, k) for k, t, _ in facts])])


def _unanswerable(rng: random.Random, names: _Names, diseases: list[tuple[str, str]], count: int) -> Iterator[Question]:
    for index in range(count):
        lang = ("en", "zh")[index % 2]
        drug, department, disease = names.drug(), names.department(), rng.choice(diseases)
        en = lang == "en"
        query = rng.choice(
            [f"What is the adult dose of {drug[0]} for {disease[0]}?", f"Who must not receive {drug[0]}?",
             f"What must visitors do before entering the {department[0]}?"] if en else
            [f"{drug[1]}治疗{disease[1]}的成人剂量是多少？", f"哪些患者禁用{drug[1]}？",
             f"进入{department[1]}前探视者必须做什么？"])
        yield Question(f"unanswerable/{index:04d}", lang, "unanswerable", query, False)


def generate_corpus(seed: int = 0, drugs: int = 12, diseases: int = 8, departments: int = 4,
                    unanswerable: int = 12) -> Corpus:
    """A corpus with `drugs` handbook entries and `departments` rule sets per language, one guideline per disease."""
    rng = random.Random(seed)
    names = _Names(rng)
    drug_names = [names.drug() for _ in range(drugs)]
    disease_names = [names.disease() for _ in range(diseases)]
    department_names = [names.department() for _ in range(departments)]
    corpus = Corpus()
    for lang in ("en", "zh"):
        for index, drug in enumerate(drug_names):
            other = drug_names[(index + 1) % len(drug_names)]
            corpus.documents.append(_drug_document(rng, lang, index, drug, disease_names, other, corpus.questions))
        for index, disease in enumerate(disease_names):
            corpus.documents.append(_guideline_document(rng, lang, index, disease, corpus.questions))
        for index, department in enumerate(department_names):
            corpus.documents.append(_department_document(rng, lang, index, department, corpus.questions))
    corpus.questions.extend(_unanswerable(rng, names, disease_names, unanswerable))
    return corpus


# --------------------------------------------------------------------------- writing files


def _paragraph(sentences: list[Sentence], lang: str) -> str:
    return ("" if lang == "zh" else " ").join(sentence.text for sentence in sentences)


def render_markdown(document: SyntheticDocument) -> str:
    parts = [f"# {document.title}"]
    for section in document.sections:
        parts += [f"## {section.heading}", _paragraph(section.sentences, document.lang)]
    return "\n\n".join(parts) + "\n"


def render_html(document: SyntheticDocument) -> str:
    body = "".join(f"<h2>{section.heading}</h2>\n<p>{_paragraph(section.sentences, document.lang)}</p>\n"
                   for section in document.sections)
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{document.title}</title></head>\n"
            f"<body><h1>{document.title}</h1>\n{body}</body></html>\n")


def render_text(document: SyntheticDocument) -> str:
    return "\n\n".join([document.title, *(_paragraph(s.sentences, document.lang) for s in document.sections)]) + "\n"


def write_docx(document: SyntheticDocument, path: Path) -> None:
    import docx

    out = docx.Document()
    out.core_properties.title = document.title
    out.add_heading(document.title, level=1)
    for section in document.sections:
        out.add_heading(section.heading, level=2)
        out.add_paragraph(_paragraph(section.sentences, document.lang))
    out.save(str(path))


def write_corpus(corpus: Corpus, src_dir: Path, qrels_path: Path) -> None:
    """Write every document under src_dir in the format its suffix names, and the questions as JSON lines."""
    for document in corpus.documents:
        path = src_dir / document.relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        suffix = path.suffix
        if suffix == ".docx":
            write_docx(document, path)
        else:
            renderer = {".md": render_markdown, ".html": render_html, ".txt": render_text}[suffix]
            path.write_text(renderer(document), encoding="utf-8")
    qrels_path.parent.mkdir(parents=True, exist_ok=True)
    qrels_path.write_text("".join(json.dumps(asdict(q), ensure_ascii=False) + "\n" for q in corpus.questions),
                          encoding="utf-8")
