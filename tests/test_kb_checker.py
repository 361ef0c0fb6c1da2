"""The checker: each class of lie is caught, and faithful restatements (reordered, reworded) pass."""

from __future__ import annotations

import pytest

from knowledge_base.checker import Verdict, check_statement

DOSE_EN = "The adult dose of Zoravastin for Karv syndrome is 40 mg once daily."
RENAL_EN = "In renal impairment the daily dose of Zoravastin must not exceed 600 mg."
BANNED_EN = "Do not give Zoravastin together with Velomab."
LEFT_EN = "For left-sided Karv syndrome, the first-line procedure is open resection."
RIGHT_EN = "For right-sided Karv syndrome, the first-line procedure is laparoscopic drainage."
DOSE_ZH = "佐阿伐他汀治疗卡文综合征的成人剂量为40mg，每日一次。"
RENAL_ZH = "肾功能不全时佐阿伐他汀每日剂量不得超过600mg。"
BANNED_ZH = "卡文综合征患者禁用佐阿伐他汀。"
LEFT_ZH = "左侧卡文综合征的首选术式为腹腔镜引流术。"


@pytest.mark.parametrize(("statement", "cited"), [
    (DOSE_EN, [DOSE_EN]),
    ("The adult dose of Zoravastin for Karv syndrome is 40mg once a day.", [DOSE_EN]),
    ("The daily dose of Zoravastin must not exceed 600 milligrams in renal impairment.", [RENAL_EN]),
    ("Never give Zoravastin along with Velomab.", [BANNED_EN]),
    (RIGHT_EN, [LEFT_EN, RIGHT_EN]),
    ("每日一次，佐阿伐他汀治疗卡文综合征的成人剂量是40 mg。", [DOSE_ZH]),
    ("佐阿伐他汀治疗卡文综合征的成人剂量为40毫克，每日1次。", [DOSE_ZH]),
    ("佐阿伐他汀每日剂量不可超过600mg。", [RENAL_ZH]),
    ("The adult dose of Zoravastin is 40 mg once daily.", [DOSE_EN, RENAL_EN]),
])
def test_faithful_restatements_are_supported(statement: str, cited: list[str]) -> None:
    assert check_statement(statement, cited) == Verdict(True, ())


@pytest.mark.parametrize(("statement", "cited", "kind", "item"), [
    ("The adult dose of Zoravastin for Karv syndrome is 75 mg once daily.", [DOSE_EN], "number", "75 mg"),
    ("The adult dose of Zoravastin for Karv syndrome is 40 mcg once daily.", [DOSE_EN], "number", "40 mcg"),
    ("The adult dose of Zoravastin for Karv syndrome is 40 mg twice daily.", [DOSE_EN], "number", "2 times"),
    ("佐阿伐他汀治疗卡文综合征的成人剂量为40mg，每日两次。", [DOSE_ZH], "number", "2 times"),
    ("The adult dose of Velotinib for Karv syndrome is 40 mg once daily.", [DOSE_EN], "entity", "Velotinib"),
    ("Do not give Zoravastin together with metformin.", [BANNED_EN], "entity", "metformin"),
    ("维奥替尼治疗卡文综合征的成人剂量为40mg，每日一次。", [DOSE_ZH], "entity", "维奥替尼"),
    ("Give Zoravastin together with Velomab.", [BANNED_EN], "negation", "negated"),
    ("Zoravastin is indicated in patients with Karv syndrome.",
     ["Zoravastin is contraindicated in patients with Karv syndrome."], "negation", "negated"),
    ("The adult dose of Zoravastin for Karv syndrome is not 40 mg once daily.", [DOSE_EN], "negation", "negated"),
    ("卡文综合征患者可用佐阿伐他汀。", [BANNED_ZH], "negation", "negated"),
    ("肾功能不全时佐阿伐他汀每日剂量可超过600mg。", [RENAL_ZH], "negation", "negated"),
    ("For right-sided Karv syndrome, the first-line procedure is open resection.", [LEFT_EN, RIGHT_EN],
     "laterality", "right"),
    ("右侧卡文综合征的首选术式为腹腔镜引流术。", [LEFT_ZH], "laterality", "right"),
])
def test_each_class_of_lie_is_named(statement: str, cited: list[str], kind: str, item: str) -> None:
    verdict = check_statement(statement, cited)
    assert not verdict.supported
    assert any(problem.startswith(f"{kind}: ") and item in problem for problem in verdict.problems), verdict


def test_words_that_only_look_negative_or_sided_do_not_count() -> None:
    cited = ["肾功能不全患者最常见的不良反应是头痛，剂量40mg左右。"]
    assert check_statement("肾功能不全患者最常见的不良反应是头痛。", cited).supported
    assert check_statement("Zoravastin is not contraindicated in pregnancy.",
                           ["Zoravastin is given in pregnancy."]).supported  # two negations cancel


def test_no_citation_or_no_statement_is_unsupported() -> None:
    assert check_statement(DOSE_EN, []).problems == ("citation: no cited sentence",)
    assert check_statement("  ", [DOSE_EN]).problems == ("statement: empty",)


def test_the_same_input_gives_the_same_verdict() -> None:
    statement = "The adult dose of Velotinib for right-sided Karv syndrome is not 75 mg."
    assert len({check_statement(statement, [DOSE_EN, LEFT_EN]) for _ in range(3)}) == 1
