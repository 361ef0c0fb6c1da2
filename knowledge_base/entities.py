"""Names in a statement that its cited text must also hold: drugs, findings, procedures, places.

No vocabulary of drugs is needed, so documents the box has never seen work the same way:

- English: a word is name-like when it is capitalised (and not a function word that merely starts
  a sentence), all capitals (an acronym), mixes letters and digits (B12), or ends in an INN stem
  of a drug class or a finding/procedure suffix (metformin's -formin, -itis, -ectomy). A name must
  occur in the cited text as a word, ignoring case and a plural s.
- Chinese: words are not separated, and jieba splits an unknown name (a new drug) into single
  characters, so a name is found by what it is not: a run of statement characters that no
  character bigram of the cited text covers is new content, unless every character in it is a
  function character or a negation/side cue (those have their own checks). jieba's noun segments
  (two characters or more) must also occur verbatim, which catches a noun swapped inside a
  phrase whose characters the cited text covers from elsewhere.
"""

from __future__ import annotations

import functools
import re

from knowledge_base.cues import CUE_CHARACTERS, EN_NEGATION, SIDE_CHARACTERS, sides
from knowledge_base.terms import jieba_tokenizer

# Function words that start an English sentence capitalised; never names.
EN_FUNCTION_WORDS = frozenset("""
a an the this that these those it its in on at of for to from by with without within into onto over under
after before during while when where whether which who whom whose what why how if unless until as than then
and or but nor so yet both either neither each every all any some no not never do does did done is are was were
be been being has have had may might must shall should will would can could please also only there here they
them their we our you your he she his her patients patient
""".split())
DRUG_STEMS = ("vastatin", "statin", "pril", "sartan", "olol", "dipine", "tinib", "mab", "cillin", "mycin",
              "floxacin", "oxacin", "cycline", "prazole", "azole", "dronate", "parin", "xaban", "gatran", "zolam",
              "azepam", "barbital", "caine", "curonium", "fentanil", "profen", "coxib", "setron", "triptan",
              "gliptin", "gliflozin", "glitazone", "formin", "lukast", "tidine", "semide", "thiazide", "sone",
              "olone", "vir", "cept", "kinase", "plase", "tropin", "relin", "afil", "oxetine", "triptyline",
              "peridol", "apine", "idone", "amide", "tecan", "platin", "rubicin", "taxel", "cort")
FINDING_SUFFIXES = ("itis", "osis", "emia", "aemia", "algia", "oma", "pathy", "uria", "penia", "cytosis", "ectomy",
                    "otomy", "ostomy", "plasty", "scopy", "graphy", "plegia", "trophy", "rrhage", "rrhea",
                    "rrhoea", "iasis", "megaly")
_NAME_SUFFIX = re.compile("(?:" + "|".join(DRUG_STEMS + FINDING_SUFFIXES) + ")s?$", re.IGNORECASE)
EN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")
CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
ZH_FUNCTION_CHARACTERS = frozenset("的地得了着过是为和与及或并且而在于时应须必要可能会将把被对由从向以其之该此这那"
                                   "等也都就还再又即则若如当所已均需请每")
NOUN_FLAGS = ("n", "nr", "ns", "nt", "nz", "nw", "vn")


def word_key(word: str) -> str:
    """Case and a plural s do not make another name."""
    lowered = word.lower()
    return lowered[:-1] if len(lowered) > 3 and lowered.endswith("s") and not lowered.endswith("ss") else lowered


def is_name_like(word: str) -> bool:
    if word.lower() in EN_FUNCTION_WORDS or EN_NEGATION.fullmatch(word) or sides(word):
        return False  # negations and sides have their own checks
    return (word[0].isupper() or any(char.isdigit() for char in word)
            or bool(_NAME_SUFFIX.search(word) and len(word) > 5))


def english_names(text: str) -> list[str]:
    """Name-like English words, in order, each once."""
    return list(dict.fromkeys(word for word in EN_WORD.findall(text) if is_name_like(word)))


def cjk_bigrams(text: str) -> set[str]:
    return {run[i:i + 2] for run in CJK_RUN.findall(text) for i in range(len(run) - 1)}


def _uncovered_runs(statement: str, cited: str) -> list[str]:
    """Maximal runs of statement CJK characters that share no bigram with the cited text."""
    cited_bigrams, cited_characters = cjk_bigrams(cited), set(cited)
    runs = []
    for match in CJK_RUN.finditer(statement):
        run = match.group()
        if len(run) == 1:
            covered = [run in cited_characters]
        else:
            covered = [any(run[j:j + 2] in cited_bigrams for j in (i - 1, i) if 0 <= j < len(run) - 1)
                       for i in range(len(run))]
        current = ""
        for character, is_covered in zip(run, covered, strict=True):
            if is_covered:
                if current:
                    runs.append(current)
                current = ""
            else:
                current += character
        if current:
            runs.append(current)
    return runs


@functools.cache
def pos_tokenizer():  # lazy: loading jieba's dictionary takes about a second
    import jieba.posseg

    return jieba.posseg.POSTokenizer(jieba_tokenizer())


def chinese_nouns(text: str) -> list[str]:
    """jieba noun segments of two characters or more (HMM off: only the shipped dictionary decides)."""
    return [pair.word for pair in pos_tokenizer().cut(text, HMM=False)
            if pair.flag in NOUN_FLAGS and len(pair.word) >= 2 and CJK_RUN.fullmatch(pair.word)]


def missing_names(statement: str, cited: str) -> list[str]:
    """Names the statement holds and the cited text does not, in the order they appear."""
    cited_words = {word_key(word) for word in EN_WORD.findall(cited)}
    missing = [word for word in english_names(statement) if word_key(word) not in cited_words]
    ignorable = ZH_FUNCTION_CHARACTERS | CUE_CHARACTERS | SIDE_CHARACTERS
    missing += [run for run in _uncovered_runs(statement, cited) if not set(run) <= ignorable]
    missing += [noun for noun in chinese_nouns(statement) if noun not in cited]
    unique = list(dict.fromkeys(missing))
    return [name for name in unique if not any(name != other and name in other for other in unique)]
