"""The mutation suite: a scripted liar's statements, on sentences written apart from the synthetic generator."""

from __future__ import annotations

from knowledge_base.checker import check_statement
from knowledge_base.evaluate import CheckerReport, run_mutation_suite
from knowledge_base.mutations import CLASSES, faithful_variants, mutants

# Sentences in the style of real handbooks and OR rules (real drug names, lower case, units and sides).
HELD_OUT = {
    "anticoagulation.txt": ["Enoxaparin 40 mg is given subcutaneously once daily for thromboprophylaxis.",
                            "Heparin must not be used in patients with a history of heparin-induced thrombocytopenia.",
                            "Mark the right knee with an indelible marker before transfer to theatre."],
    "antibiotics.txt": ["Cefazolin 2 g IV should be administered within 60 minutes before skin incision.",
                        "For bilateral inguinal hernia, a laparoscopic repair is preferred.",
                        "Do not give metformin within 48 hours after iodinated contrast."],
    "围术期.txt": ["对青霉素过敏者不得使用阿莫西林，可改用克林霉素。", "依诺肝素每日一次皮下注射40 mg，用于预防血栓。",
                "右侧腹股沟疝首选腹腔镜修补术。", "术前30分钟内静脉给予头孢唑林2 g。"],
}


def test_the_checker_passes_the_suite_on_held_out_sentences() -> None:
    report = run_mutation_suite(HELD_OUT)
    assert all(report.told[kind] > 0 for kind in CLASSES)
    assert report.failures() == [], report.table()


def test_every_lie_differs_from_its_statement_and_names_its_class() -> None:
    source = "Apply the tourniquet to the left arm and give cefazolin 2 g."
    lies = mutants(source, source, ["clindamycin"])
    assert {lie.kind for lie in lies} == set(CLASSES)
    for lie in lies:
        assert lie.statement != source
        problems = check_statement(lie.statement, [source]).problems
        assert problems, lie


def test_faithful_variants_keep_the_facts() -> None:
    for sentence in HELD_OUT["围术期.txt"] + HELD_OUT["antibiotics.txt"]:
        variants = faithful_variants(sentence)
        assert variants[0] == sentence and len(set(variants)) == len(variants)
        assert all(check_statement(variant, [sentence]).supported for variant in variants)


def test_a_checker_that_lets_lies_through_fails_the_gates() -> None:
    report = CheckerReport(caught=dict.fromkeys(CLASSES, 90), told=dict.fromkeys(CLASSES, 100), faithful=100,
                           rejected=20)
    failures = report.failures()
    assert len(failures) == len(CLASSES) + 1
    assert all(kind in " ".join(failures) for kind in CLASSES) and "faithful" in failures[-1]
