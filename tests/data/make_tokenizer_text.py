#!/usr/bin/env python3
"""Generates the tokenizer equality suite's test text: tests/data/tokenizer_text.jsonl.zst.

The text is JSON Lines, one JSON string per line (json.dumps(s, ensure_ascii=False)), each string one
tokenizer input. Every string is made here from word lists, templates and code-point ranges written for
this script and combined by a fixed-seed PRNG (splitmix64, integers only: no floats, no hash(), no
unicodedata), so the same bytes come out on any Python 3 version. Readers must split the file on b"\\n"
only (never str.splitlines(): U+2028, U+0085 and U+001C..U+001E appear raw inside the JSON strings).

Lines are grouped by category, in a fixed order; the script prints each category's line range (1-based)
so a failing line number names its category.

Usage (repository root; needs the zstd CLI for a .zst output):
  /usr/bin/python3 tests/data/make_tokenizer_text.py
      writes tests/data/tokenizer_text.jsonl.zst (zstd -19, one frame that records its size); prints lines, MB, SHA-256 of the
      uncompressed bytes, the compressed size and the category ranges.
  /usr/bin/python3 tests/data/make_tokenizer_text.py --out PATH.jsonl [--check]
      the same text uncompressed (no zstd needed); --check fails unless its SHA-256 is EXPECTED_SHA256.
  /usr/bin/python3 tests/data/make_tokenizer_text.py --bench-mb 12 --out /tmp/bench.jsonl
      a benchmark text of at least 12 MB (10^6 bytes): whole rounds of the same generator with other
      seeds (never committed). A .zst --out is compressed at level 3.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys

# SHA-256 of the uncompressed default text (seed 1). Update it whenever the generator's output changes.
EXPECTED_SHA256 = "9e1f8778980a73a3ecf8b2f1965484087421e33516bd65393c14c4e0f8473cdb"
DEFAULT_SEED = 1
BENCH_SEED_BASE = 1000

M64 = (1 << 64) - 1


class Rng:
    """splitmix64; integer-only helpers so the output never depends on float formatting or libm."""

    def __init__(self, seed):
        self.s = seed & M64

    def next64(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & M64
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def below(self, n):
        return self.next64() % n

    def randint(self, a, b):  # inclusive
        return a + self.below(b - a + 1)

    def choice(self, seq):
        return seq[self.below(len(seq))]

    def chance(self, num, den):
        return self.below(den) < num

    def sample(self, seq, k):
        pool = list(seq)
        out = []
        for _ in range(min(k, len(pool))):
            out.append(pool.pop(self.below(len(pool))))
        return out

    def shuffle(self, seq):
        for i in range(len(seq) - 1, 0, -1):
            j = self.below(i + 1)
            seq[i], seq[j] = seq[j], seq[i]

    def loglen(self, lo, hi):
        """A length in [lo, hi], roughly log-uniform: a random octave, then uniform inside it."""
        e_lo = lo.bit_length() - 1
        e_hi = hi.bit_length() - 1
        e = self.randint(e_lo, e_hi)
        a = max(lo, 1 << e)
        b = min(hi, (2 << e) - 1)
        return self.randint(a, b)

    def weighted(self, pairs):
        total = sum(w for w, _ in pairs)
        r = self.below(total)
        for w, v in pairs:
            if r < w:
                return v
            r -= w
        return pairs[-1][1]


def clip(s, hi):
    """s cut to at most hi code points, at a line break when one falls in the second half."""
    if len(s) <= hi:
        return s
    cut = s.rfind("\n", 0, hi)
    return s[:cut] if cut > hi // 2 else s[:hi]


def cps(*points):
    return "".join(chr(p) for p in points)


def crange(a, b):
    return [chr(c) for c in range(a, b + 1)]


# ----------------------------------------------------------------------------------------------------
# English-like vocabulary (plain word lists written for this script)

NOUNS = """harbor engine river window teacher garden bridge signal lantern kettle market ladder village
mountain letter pencil ocean forest museum doctor farmer station planet rocket violin battery blanket
canyon cottage desert elephant festival glacier hammer island jacket journey kitchen library meadow
needle orchard palace pilot puzzle question rabbit recipe ribbon saddle scholar shadow shelter soldier
spider stadium stone storm sugar tailor theater thunder ticket tiger tower tractor treasure tunnel
umbrella valley vessel wagon whistle wizard workshop anchor basket candle compass diamond feather
furnace harvest helmet lemon marble mirror notebook painter parcel pepper pillow quarry radar reactor
sailor scarf server sensor socket spool telescope thread tomato trumpet turbine vector velvet voyage
wallet wheel wire cache kernel buffer packet router compiler parser token matrix tensor gradient
budget contract invoice ledger meeting deadline schedule report summary chapter paragraph sentence
orange bicycle lighthouse copper silver granite pebble cloud breeze winter summer autumn spring
morning evening midnight weekend holiday neighbor cousin captain merchant architect engineer
student professor nurse chemist baker plumber courier janitor mayor sheriff narrator""".split()

IRREGULAR = {  # base: (past, participle, ing)
    "build": ("built", "built", "building"), "bring": ("brought", "brought", "bringing"),
    "buy": ("bought", "bought", "buying"), "catch": ("caught", "caught", "catching"),
    "draw": ("drew", "drawn", "drawing"), "drive": ("drove", "driven", "driving"),
    "find": ("found", "found", "finding"), "forget": ("forgot", "forgotten", "forgetting"),
    "hide": ("hid", "hidden", "hiding"), "hold": ("held", "held", "holding"),
    "keep": ("kept", "kept", "keeping"), "leave": ("left", "left", "leaving"),
    "lend": ("lent", "lent", "lending"), "make": ("made", "made", "making"),
    "read": ("read", "read", "reading"), "ride": ("rode", "ridden", "riding"),
    "sell": ("sold", "sold", "selling"), "send": ("sent", "sent", "sending"),
    "sing": ("sang", "sung", "singing"), "steal": ("stole", "stolen", "stealing"),
    "swim": ("swam", "swum", "swimming"), "take": ("took", "taken", "taking"),
    "teach": ("taught", "taught", "teaching"), "throw": ("threw", "thrown", "throwing"),
    "wake": ("woke", "woken", "waking"), "write": ("wrote", "written", "writing"),
    "see": ("saw", "seen", "seeing"), "run": ("ran", "run", "running"),
    "give": ("gave", "given", "giving"), "break": ("broke", "broken", "breaking"),
}
REGULAR = """repair paint open close carry follow measure compile parse cook clean visit watch
borrow count deliver fix greet jump kick lift mention notice order pack pull push question rescue
share tidy travel unlock wash weigh check test deploy merge rename sort filter print render
calculate delete update encode decode inspect polish label ignore answer plant study copy hurry
explain expect finish handle invite launch listen move need offer prepare protect reach remember
return start stop visit want wonder""".split()
ADJS = """quiet broken bright narrow ancient curious gentle heavy hollow eager fragile golden
hidden honest humble jagged lazy lively lucky modest noisy patient polite proud rapid rusty sharp
shiny silent simple sleepy smooth solid spare steady sticky strange sturdy sudden tidy tiny
tired tricky vivid warm wild wise wooden yellow crimson frozen tangled careful clever crooked
distant empty famous fierce grumpy hungry immense little magnetic nervous obvious orange plain
precious purple rough scarlet shallow spotless stale tender tough ugly vast weary wet wobbly""".split()
ADVERBS = """quickly slowly quietly carefully suddenly rarely often never always eventually
briefly boldly gently loudly nearly barely happily sadly oddly calmly roughly neatly""".split()
PREPS = "near behind under above beside beyond across through inside outside around against toward".split()
TIMES = ["yesterday", "last week", "at dawn", "before lunch", "after midnight", "on Tuesday",
         "in the spring", "every morning", "since 1998", "for three hours", "two days ago", "tonight"]
NAMES = ["Mara", "Tobias", "Elin", "Rafael", "Priya", "Kenji", "Odette", "Bruno", "Ayla", "Sven",
         "Lucia", "Omar", "Greta", "Idris", "Nadia", "Felix", "Hana", "Marek", "Zoe", "Anwar",
         "McAllister", "O'Brien", "D'Angelo", "Van der Berg", "MacLeod", "José", "Zoë", "Björn",
         "Łukasz", "Ngozi", "Søren", "Ines"]
PLACES = ["Varrow", "Eastmere", "Port Lindel", "Kessing", "Old Harrow", "Brackwater", "Sunhollow",
          "Ravensfold", "New Tarrin", "Millbeck", "Cold Ashby", "Fenwick Cross"]
INTERJ = ["Oh", "Well", "Hey", "Wow", "Alas", "Hmm", "Ah", "Oops", "Yes", "No", "Okay", "Ugh", "Huh"]
PRONOUNS = ["I", "you", "he", "she", "we", "they", "it", "someone", "nobody", "everyone"]
CONTRACTIONS = [
    "I'm", "you're", "he's", "she's", "it's", "we're", "they're", "I've", "you've", "we've",
    "they've", "I'd", "you'd", "he'd", "she'd", "we'd", "they'd", "I'll", "you'll", "he'll",
    "she'll", "we'll", "they'll", "isn't", "aren't", "wasn't", "weren't", "don't", "doesn't",
    "didn't", "can't", "couldn't", "won't", "wouldn't", "shouldn't", "haven't", "hasn't", "hadn't",
    "mustn't", "needn't", "let's", "that's", "there's", "here's", "what's", "who's", "where's",
    "how's", "that'll", "who'd", "y'all", "o'clock", "ma'am", "'tis", "'twas", "ne'er", "e'er",
    "rock 'n' roll", "'em", "could've", "should've", "would've", "might've", "who've", "it'd've"]


def verb_forms(v):
    if v in IRREGULAR:
        past, part, ing = IRREGULAR[v]
    else:
        if v.endswith("e"):
            past, ing = v + "d", v[:-1] + "ing"
        elif v.endswith("y") and v[-2] not in "aeiou":
            past, ing = v[:-1] + "ied", v + "ing"
        elif v in ("stop", "plan", "hug"):
            past, ing = v + v[-1] + "ed", v + v[-1] + "ing"
        else:
            past, ing = v + "ed", v + "ing"
        part = past
    if v.endswith(("s", "sh", "ch", "x")):
        third = v + "es"
    elif v.endswith("y") and v[-2] not in "aeiou":
        third = v[:-1] + "ies"
    else:
        third = v + "s"
    return {"base": v, "past": past, "part": part, "ing": ing, "third": third}


VERBS = [verb_forms(v) for v in list(IRREGULAR) + REGULAR]


def plural(n):
    if n.endswith(("s", "sh", "ch", "x")):
        return n + "es"
    if n.endswith("y") and n[-2] not in "aeiou":
        return n[:-1] + "ies"
    return n + "s"


def article(word):
    return "an" if word[0] in "aeiou" else "a"


def np_(R):
    k = R.below(10)
    noun = R.choice(NOUNS)
    if k < 3:
        return "the " + noun
    if k < 5:
        adj = R.choice(ADJS)
        return "the " + adj + " " + noun
    if k == 5:
        adj = R.choice(ADJS)
        return article(adj) + " " + adj + " " + noun
    if k == 6:
        return R.choice(NAMES)
    if k == 7:
        return R.choice(["my", "your", "her", "his", "our", "their", "its"]) + " " + noun
    if k == 8:
        return R.choice(["two", "three", "several", "many", "a few", "some", "twelve", "no"]) + " " + plural(noun)
    return R.choice(NAMES) + "'s " + noun


def clause(R):
    v = R.choice(VERBS)
    k = R.below(9)
    subj = np_(R)
    if k == 0:
        return subj + " " + v["past"] + " " + np_(R)
    if k == 1:
        return subj + " " + v["past"] + " " + np_(R) + " " + R.choice(PREPS) + " " + np_(R)
    if k == 2:
        return subj + " " + R.choice(["will", "might", "could", "should", "must", "can"]) + " " + v["base"] + " " + np_(R)
    if k == 3:
        return subj + " " + R.choice(["was", "is", "had been"]) + " " + v["ing"] + " " + np_(R) + " " + R.choice(TIMES)
    if k == 4:
        return subj + " " + R.choice(ADVERBS) + " " + v["past"] + " " + np_(R)
    if k == 5:
        return R.choice(CONTRACTIONS) + " " + v["part"] + " " + np_(R)
    if k == 6:
        return subj + " " + v["third"] + " " + np_(R) + " " + R.choice(TIMES)
    if k == 7:
        return subj + " " + R.choice(["has", "hasn't", "had", "hadn't"]) + " " + v["part"] + " " + np_(R)
    return "there " + R.choice(["was", "were", "is", "are", "will be"]) + " " + np_(R) + " " + R.choice(PREPS) + " " + np_(R)


def cap(s):
    return s[:1].upper() + s[1:] if s else s


def sentence(R):
    k = R.below(16)
    if k <= 3:
        s = cap(clause(R)) + R.choice([".", ".", ".", "!", ";", "..."])
    elif k == 4:
        s = cap(clause(R)) + ", " + R.choice(["and", "but", "so", "yet", "or"]) + " " + clause(R) + "."
    elif k == 5:
        v = R.choice(VERBS)
        s = R.choice(["Why", "When", "Where", "How", "Who"]) + " " + R.choice(["did", "does", "would", "could", "didn't", "won't"]) + " " + np_(R) + " " + v["base"] + " " + np_(R) + "?"
    elif k == 6:
        adj = R.choice(ADJS)
        s = R.choice(INTERJ) + "! What " + article(adj) + " " + adj + " " + R.choice(NOUNS) + "!"
    elif k == 7:
        v = R.choice(VERBS)
        s = cap(v["base"]) + " " + np_(R) + " " + R.choice(TIMES) + R.choice([".", "!", ", please."])
    elif k == 8:
        q = R.choice([("\"", "\""), ("\u201c", "\u201d"), ("'", "'"), ("\u2018", "\u2019"), ("\u00ab", "\u00bb"), ("\u201e", "\u201c")])
        s = q[0] + cap(clause(R)) + "," + q[1] + " " + R.choice(NAMES) + " " + R.choice(["said", "whispered", "asked", "replied", "shouted"]) + "."
    elif k == 9:
        items = [np_(R) for _ in range(R.randint(3, 6))]
        sep = R.choice([", ", "; ", " / "])
        s = cap(clause(R)) + ": " + sep.join(items[:-1]) + R.choice([", and ", " and ", ", or "]) + items[-1] + "."
    elif k == 10:
        s = cap(np_(R)) + " (" + clause(R) + ") " + R.choice(VERBS)["past"] + " " + np_(R) + "."
    elif k == 11:
        s = cap(clause(R)) + R.choice([" \u2014 ", " -- ", " \u2013 ", "\u2014"]) + clause(R) + "."
    elif k == 12:
        s = R.choice(["If", "Although", "Because", "Unless", "While", "Since"]) + " " + clause(R) + ", " + clause(R) + "."
    elif k == 13:
        s = "In " + str(R.randint(1066, 2099)) + ", " + clause(R) + " in " + R.choice(PLACES) + "."
    elif k == 14:
        s = R.choice(INTERJ) + "... " + clause(R) + R.choice(["?!", "!!", "?", "...", "!?"])
    else:
        s = cap(clause(R)) + ", " + R.choice(["didn't", "wasn't", "isn't", "won't", "hasn't"]) + " " + R.choice(["it", "she", "he", "they", "we"]) + "?"
    m = R.below(40)
    if m == 0:
        s = s.upper()
    elif m == 1:
        s = s.lower()
    elif m == 2:
        s = " ".join(cap(w) for w in s.split(" "))
    return s


def paragraph(R, target):
    out = []
    size = 0
    while size < target:
        s = sentence(R)
        out.append(s)
        size += len(s) + 1
    sep = R.choice([" ", " ", " ", "  "])
    return sep.join(out)


def gen_prose_short(R):
    n = R.weighted([(6, 1), (3, 2), (1, 3)])
    return clip(" ".join(sentence(R) for _ in range(n)), 200)


def gen_prose_medium(R):
    target = R.loglen(200, 5000)
    paras = []
    size = 0
    while size < target:
        p = paragraph(R, R.randint(150, 900))
        paras.append(p)
        size += len(p)
    sep = R.choice(["\n\n", "\n", "\n\n", "\r\n\r\n", "\n\n\n", " "])
    s = sep.join(paras)
    if R.chance(1, 8):
        s = "\t" + s.replace(sep, sep + "\t")  # tab-indented paragraphs
    return clip(s, 5000)


# ----------------------------------------------------------------------------------------------------
# Contractions and apostrophes

APOS = ["'", "'", "'", "\u2019", "\u02bc", "\u2018", "`", "\u00b4", "\u2032", "\uff07"]
SUFFIXES = ["s", "t", "re", "ve", "m", "ll", "d"]


def case_variant(R, s):
    k = R.below(5)
    if k == 0:
        return s.upper()
    if k == 1:
        return "".join(c.upper() if R.chance(1, 2) else c for c in s)
    return s


def gen_contractions(R):
    k = R.below(8)
    if k == 0:  # the regex alternatives in every case
        parts = []
        for _ in range(R.randint(3, 12)):
            suf = R.choice(SUFFIXES)
            suf = R.choice([suf, suf.upper(), suf[:1].upper() + suf[1:], suf[:1] + suf[1:].upper()])
            ap = R.choice(APOS)
            pre = R.choice(["it", "IT", "we", "WE", "they", "THEY", "you", "I", "she", "x", "3", "", " ", "\U0001F600", "\u00e9", "\u4e2d", "_", "-"])
            parts.append(pre + ap + suf)
        return R.choice([" ", "", ", "]).join(parts)
    if k == 1:  # whole sentences with contractions, upper and lower
        s = " ".join(R.choice(CONTRACTIONS) + " " + clause(R) for _ in range(R.randint(1, 3)))
        return case_variant(R, cap(s)) + R.choice([".", "!", "?"])
    if k == 2:  # Unicode apostrophes in place of ASCII ones
        ap = R.choice(APOS[3:])
        return cap(" ".join(c.replace("'", ap) for c in R.sample(CONTRACTIONS, R.randint(3, 10)))) + "."
    if k == 3:  # possessives
        n = R.choice(NOUNS)
        return R.choice([
            "the " + n + "'s " + R.choice(NOUNS), "the " + plural(n) + "' " + R.choice(NOUNS),
            R.choice(NAMES) + "'s and " + R.choice(NAMES) + "'S", "James' and Jones's", "the '90s and the '80s",
            "in '24 and '25", "A's, B's and C's", "1990's", "it's its own", "its' (sic)", "'s", "'S", "'ll", "'LL",
            "'re", "'RE", "'Re", "'rE", "'ve'", "''s", "'''", "'s's's", "'ss", "'sa", "'d'd", "'t", "'T'", "'m'M",
            "x'll've", "can't've", "'ll're'd"])
    if k == 4:  # tricky case folding: long s, Kelvin sign, dotted capital I, sharp s
        return R.choice(["it'\u017f", "IT'\u017f", "'\u017f", "we'\u212a", "he'\u0130", "'\u0131", "she'\u1e9e", "'\u00df",
                         "'\u0053\u0307", "it's \u017ftrange", "'\ufb06", "'\uff33", "I'\uff2d"]) + R.choice(["", " ok", ".", "!"])
    if k == 5:  # apostrophes beside spaces, digits, punctuation, newlines
        return R.choice(["' s", "'\ns", "'\ts", " 's", "  's", "\n's", "\r\n'll", "5's", "5 's", "?'s", "!'ll", "\"'s\"",
                         "('re)", "['ve]", "{'d}", "<'m>", "'s\n", "'ll\r\n", "\U0001F44D's", "\u4e2d'll", "\u00e9'RE", "'s'"]) + " " + R.choice(CONTRACTIONS)
    if k == 6:  # dialogue
        return "\"" + cap(R.choice(CONTRACTIONS)) + " " + clause(R) + ",\" " + R.choice(NAMES) + " said. \"" + cap(R.choice(CONTRACTIONS)) + " " + clause(R) + ".\""
    ap = R.choice(APOS)
    return ap + cap(clause(R)) + ap + " " + case_variant(R, R.choice(CONTRACTIONS).replace("'", ap))


# ----------------------------------------------------------------------------------------------------
# Numbers

DIGIT_SETS = [
    crange(0x0660, 0x0669), crange(0x06F0, 0x06F9), crange(0x0966, 0x096F), crange(0x0E50, 0x0E59),
    crange(0xFF10, 0xFF19), crange(0x09E6, 0x09EF), crange(0x1D7CE, 0x1D7D7), crange(0x1D7D8, 0x1D7E1),
]
OTHER_NUMS = list("\u00b2\u00b3\u00b9\u00bc\u00bd\u00be\u2070\u2074\u2075\u2080\u2081\u2082\u2460\u2461\u2462\u2473"
                  "\u2160\u2161\u2162\u216b\u217b\u3007\u3021\u3022\u2155\u2189\u24ea\u2776\u3280")
CJK_NUMS = list("\u4e00\u4e8c\u4e09\u56db\u4e94\u516d\u4e03\u516b\u4e5d\u5341\u767e\u5343\u4e07\u5104")


def digits(R, n, lead_zero_ok=False):
    s = "".join(chr(48 + R.below(10)) for _ in range(n))
    if not lead_zero_ok and n > 1 and s[0] == "0":
        s = chr(49 + R.below(9)) + s[1:]
    return s


def group(s, sep, size=3):
    out = []
    while len(s) > size:
        out.append(s[-size:])
        s = s[:-size]
    out.append(s)
    return sep.join(reversed(out))


def number(R):
    k = R.below(26)
    if k <= 3:
        return digits(R, R.randint(1, 40))
    if k == 4:
        return "-" + digits(R, R.randint(1, 40))
    if k == 5:
        return group(digits(R, R.randint(4, 40)), R.choice([",", ".", " ", "_", "'", "\u00a0", "\u202f", "\u2009"]))
    if k == 6:
        n = digits(R, R.randint(6, 15))
        return group(n[:-3], ",", 2) + "," + n[-3:]  # lakh grouping
    if k == 7:
        return R.choice(["", "-", "+"]) + digits(R, R.randint(1, 12)) + "." + digits(R, R.randint(1, 20), True)
    if k == 8:
        return R.choice([".", "-.", "0."]) + digits(R, R.randint(1, 9), True)
    if k == 9:
        return digits(R, R.randint(1, 3)) + "." + digits(R, R.randint(1, 6), True) + R.choice(["e", "E"]) + R.choice(["", "-", "+"]) + digits(R, R.randint(1, 3))
    if k == 10:
        y, m, d = R.randint(1900, 2099), R.randint(1, 12), R.randint(1, 28)
        return R.choice(["%04d-%02d-%02d", "%04d/%02d/%02d", "%04d.%02d.%02d"]) % (y, m, d) if R.chance(1, 2) else \
            R.choice(["%02d/%02d/%04d", "%02d.%02d.%04d", "%d-%d-%d"]) % (d, m, y)
    if k == 11:
        return "%04d-%02d-%02dT%02d:%02d:%02d" % (R.randint(1970, 2099), R.randint(1, 12), R.randint(1, 28), R.randint(0, 23), R.randint(0, 59), R.randint(0, 59)) + \
            R.choice(["Z", ".%03dZ" % R.below(1000), "+05:30", "-08:00", ""])
    if k == 12:
        return "%d:%02d" % (R.randint(0, 23), R.randint(0, 59)) + R.choice(["", ":%02d" % R.below(60), " AM", " PM", "pm", ":%02d.%06d" % (R.below(60), R.below(10 ** 6))])
    if k == 13:
        if R.chance(1, 3):
            return R.choice(["3.10.2", "3.11.7", "3.9.18", "1.0.0", "0.19.1", "10.0.19045", "2.7.18", "v1.2.3", "1.2.3-rc.1+build.5",
                             "22.04.3", "6.1.0-17-amd64", "4.40.0.dev0", "12.4.1", "1.26.4", "0.0.1a3", "2024.1"])
        v = ".".join(str(R.loglen(1, 300) - 1 + R.below(2)) for _ in range(R.randint(2, 4)))
        return R.choice(["", "", "v", "V", "version "]) + v + R.choice(["", "", "-rc.1", "-beta", "+build.5", "a3", ".post1", "-SNAPSHOT", "rc2"])
    if k == 14:
        fmt = R.choice(["+1 (%03d) %03d-%04d", "%03d-%03d-%04d", "%03d.%03d.%04d", "+44 %02d %04d %04d", "+81-%02d-%04d-%04d",
                        "(%02d) %04d %04d", "+49 %03d %07d %d"])
        return fmt % tuple(R.randint(10, 999) if i == 0 else R.randint(100, 9999) for i in range(fmt.count("%")))
    if k == 15:
        return ".".join(str(R.below(256)) for _ in range(4)) + R.choice(["", ":%d" % R.randint(1, 65535), "/%d" % R.randint(8, 32)])
    if k == 16:
        return R.choice(["$", "\u20ac", "\u00a3", "\u00a5", "\u20b9", "-$", "US$", "CHF "]) + group(digits(R, R.randint(1, 9)), ",") + R.choice(["", ".%02d" % R.below(100)])
    if k == 17:
        return R.choice(["", "+", "-"]) + digits(R, R.randint(1, 3)) + R.choice(["", ".%d" % R.below(10)]) + R.choice(["%", " %", "\u2030", "pp"])
    if k == 18:
        return digits(R, R.randint(1, 4)) + R.choice(["km", "kg", "GHz", "MB", "GiB", "ms", "\u00b5s", "px", "p", "K", "x", "st", "nd", "rd", "th", "\u00b0C", " \u00b0F", "mAh"])
    if k == 19:
        return R.choice(["0x", "0X", "#", "0b", "0o", "\\x"]) + "".join(R.choice("0123456789abcdefABCDEF") for _ in range(R.randint(1, 16)))
    if k == 20:
        return "%d/%d" % (R.randint(1, 99), R.randint(1, 99)) if R.chance(1, 2) else "%d:%d" % (R.randint(1, 21), R.randint(1, 16))
    if k == 21:
        return str(R.randint(0, 999)) + R.choice(["-", "..", "\u2013", "\u2014", " to ", "~"]) + str(R.randint(0, 9999))
    if k == 22:
        ds = R.choice(DIGIT_SETS)
        return "".join(R.choice(ds) for _ in range(R.randint(1, 12)))
    if k == 23:
        return "".join(R.choice(OTHER_NUMS) for _ in range(R.randint(1, 5)))
    if k == 24:
        return "".join(R.choice(CJK_NUMS) for _ in range(R.randint(1, 6)))
    return R.choice(["abc", "x", "H", "CO", "COVID-", "mp", "B", "v", "id_", "x86_"]) + digits(R, R.randint(1, 6)) + R.choice(["", "def", "D", "O", "abc", "_64", "px"])


def gen_numbers_short(R):
    k = R.below(6)
    if k == 0:
        return number(R)
    if k == 1:
        return R.choice([", ", " ", "; ", "\t", " | ", ",", "\n"]).join(number(R) for _ in range(R.randint(2, 8)))
    if k == 2:
        return cap(np_(R)) + " " + R.choice(["cost", "weighed", "measured", "was", "reached", "logged"]) + " " + number(R) + R.choice([".", " today.", " in total.", "!", " (approx.)"])
    if k == 3:
        return R.choice(["Call ", "Version ", "Order #", "ID: ", "Total: ", "Date: ", "Room ", "Build ", "Ref. "]) + number(R)
    if k == 4:  # every digit count, bare
        n = R.randint(1, 40)
        return digits(R, n, True)
    return "(" + number(R) + ")" + R.choice(["", " ", "."]) + number(R)


def gen_numbers_medium(R):
    target = R.loglen(200, 3000)
    rows = []
    size = 0
    cols = R.randint(2, 6)
    sep = R.choice([",", "\t", " | ", ";", "  "])
    while size < target:
        row = sep.join(number(R) for _ in range(cols))
        rows.append(row)
        size += len(row) + 1
    return R.choice(["\n", "\r\n"]).join(rows)


# ----------------------------------------------------------------------------------------------------
# Source code

IDENT_WORDS = """count index value item node key total buf size len offset data result name path
file user config state cache token block layer head batch score weight bias input output
error status flag limit max min start end left right next prev parent child queue stack
hash seed rate step epoch loss grad mask shape dim rank page row col cell text line word""".split()


def ident(R, style=None):
    n = R.weighted([(5, 1), (4, 2), (1, 3)])
    ws = [R.choice(IDENT_WORDS) for _ in range(n)]
    style = style or R.choice(["snake", "snake", "camel", "pascal", "upper"])
    if style == "snake":
        s = "_".join(ws)
    elif style == "camel":
        s = ws[0] + "".join(cap(w) for w in ws[1:])
    elif style == "pascal":
        s = "".join(cap(w) for w in ws)
    else:
        s = "_".join(ws).upper()
    if R.chance(1, 8):
        s += str(R.below(100))
    if R.chance(1, 12):
        s = "_" + s
    return s


def py_expr(R, depth=0):
    k = R.below(9 if depth < 2 else 4)
    if k == 0:
        return ident(R, "snake")
    if k == 1:
        return str(R.loglen(1, 100000) - 1)
    if k == 2:
        return repr(R.choice(["hello", "", "a b", "\u00e9t\u00e9", "it's", "tab\there", "\u4e2d\u6587", "x" * R.randint(1, 5)]))
    if k == 3:
        return "%d.%d" % (R.below(100), R.below(1000))
    if k == 4:
        return py_expr(R, depth + 1) + " " + R.choice(["+", "-", "*", "/", "//", "%", "**", "==", "!=", "<=", ">=", "and", "or", "<<", ">>", "&", "|", "^"]) + " " + py_expr(R, depth + 1)
    if k == 5:
        return ident(R, "snake") + "(" + ", ".join(py_expr(R, depth + 1) for _ in range(R.below(4))) + ")"
    if k == 6:
        return "[" + ", ".join(py_expr(R, depth + 1) for _ in range(R.below(5))) + "]"
    if k == 7:
        return "{" + ", ".join(repr(ident(R, "snake")) + ": " + py_expr(R, depth + 1) for _ in range(R.below(4))) + "}"
    return "f\"{" + ident(R, "snake") + R.choice(["", "!r", ":>10", ":.3f", ":08x"]) + "} " + R.choice(["items", "done", "\u2713", "ms"]) + "\""


def py_block(R, ind, level, lines, budget):
    for _ in range(R.randint(1, 5)):
        if budget[0] <= 0:
            return
        pre = ind * level
        k = R.below(10 if level < 4 else 5)
        if k <= 2:
            lines.append(pre + ident(R, "snake") + " " + R.choice(["=", "+=", "-=", "|=", ":="]) + " " + py_expr(R))
        elif k == 3:
            lines.append(pre + R.choice(["return ", "yield ", "print(", "raise ValueError("]) + py_expr(R) + (")" if R.chance(1, 3) else ""))
        elif k == 4:
            lines.append(pre + "# " + sentence(R))
        elif k == 5:
            lines.append(pre + "if " + py_expr(R) + ":")
            py_block(R, ind, level + 1, lines, budget)
            if R.chance(1, 2):
                lines.append(pre + "else:")
                py_block(R, ind, level + 1, lines, budget)
        elif k == 6:
            lines.append(pre + "for " + ident(R, "snake") + " in range(" + str(R.randint(1, 1000)) + "):")
            py_block(R, ind, level + 1, lines, budget)
        elif k == 7:
            lines.append(pre + "while " + py_expr(R) + ":")
            py_block(R, ind, level + 1, lines, budget)
        elif k == 8:
            lines.append(pre + "try:")
            py_block(R, ind, level + 1, lines, budget)
            lines.append(pre + "except (KeyError, IndexError) as exc:")
            lines.append(pre + ind + "log.warning(\"failed: %s\", exc)")
        else:
            lines.append(pre + "with open(" + repr(ident(R) + ".txt") + ", \"r\", encoding=\"utf-8\") as fh:")
            py_block(R, ind, level + 1, lines, budget)
        budget[0] -= len(lines[-1])


def gen_python(R, target):
    ind = R.choice(["    ", "    ", "  ", "\t", "        "])
    lines = [R.choice(["import os", "import sys, json", "from typing import List, Optional", "#!/usr/bin/env python3"])]
    budget = [target]
    while budget[0] > 0:
        if R.chance(1, 3):
            cls = ident(R, "pascal")
            lines.append("")
            lines.append("class " + cls + "(" + R.choice(["object", "Exception", "dict", "Base"]) + "):")
            lines.append(ind + "\"\"\"" + sentence(R) + "\"\"\"")
            lines.append("")
            lines.append(ind + "def __init__(self, " + ident(R, "snake") + ": int = 0) -> None:")
            py_block(R, ind, 2, lines, budget)
        else:
            lines.append("")
            lines.append("")
            lines.append(R.choice(["", "@functools.lru_cache(maxsize=None)\n", "@staticmethod\n"]) + "def " + ident(R, "snake") + "(" +
                         ", ".join(ident(R, "snake") + R.choice(["", ": int", ": str = \"\"", "=None", ": List[float]"]) for _ in range(R.below(4))) + "):")
            if R.chance(1, 2):
                lines.append(ind + "\"\"\"" + sentence(R) + "\"\"\"")
            py_block(R, ind, 1, lines, budget)
    if R.chance(1, 5):  # mixed indentation: a tab where spaces were
        lines = [l.replace(ind, "\t", 1) if R.chance(1, 6) else l for l in lines]
    if R.chance(1, 6):
        lines = [l + R.choice(["", " ", "  ", "\t"]) for l in lines]  # trailing whitespace
    return R.choice(["\n", "\n", "\n", "\r\n"]).join(lines) + R.choice(["", "\n"])


def cpp_stmt(R, ind, level, lines, budget):
    for _ in range(R.randint(1, 5)):
        if budget[0] <= 0:
            return
        pre = ind * level
        k = R.below(9 if level < 4 else 4)
        a, b = ident(R, "snake"), ident(R, "camel")
        if k == 0:
            lines.append(pre + R.choice(["int", "auto", "std::size_t", "const double", "uint64_t", "std::string"]) + " " + a + " = " + b + R.choice(["", "->size()", "[i]", ".at(3)", " << 2", " * 0.5f", "::kMax"]) + ";")
        elif k == 1:
            lines.append(pre + a + R.choice([" += ", " = ", " ^= ", " <<= "]) + b + "(" + str(R.below(100)) + ", &" + ident(R) + ");")
        elif k == 2:
            lines.append(pre + R.choice(["// ", "/* ", "/// "]) + sentence(R) + R.choice(["", " */"]))
        elif k == 3:
            lines.append(pre + "std::cout << \"" + R.choice(["value: ", "\\t", "done\\n", "\u00e9l\u00e8ve ", "%d items"]) + "\" << " + a + " << std::endl;")
        elif k == 4:
            lines.append(pre + "for (int i = 0; i < " + a + "; ++i) {")
            cpp_stmt(R, ind, level + 1, lines, budget)
            lines.append(pre + "}")
        elif k == 5:
            lines.append(pre + "if (" + a + R.choice([" == nullptr", " != 0 && ", " >= ", "->empty()"]) + ("" if R.chance(1, 2) else b) + ") {")
            cpp_stmt(R, ind, level + 1, lines, budget)
            lines.append(pre + "} else {")
            cpp_stmt(R, ind, level + 1, lines, budget)
            lines.append(pre + "}")
        elif k == 6:
            lines.append(pre + "switch (" + a + ") {")
            for c in range(R.randint(1, 3)):
                lines.append(pre + "case " + str(c) + ":")
                lines.append(pre + ind + "return " + b + ";")
            lines.append(pre + "default:")
            lines.append(pre + ind + "break;")
            lines.append(pre + "}")
        elif k == 7:
            lines.append(pre + "std::vector<std::pair<int, std::string>> " + a + "{{1, \"a\"}, {2, \"b\"}};")
        else:
            lines.append(pre + "auto " + a + " = [&](const auto& x) -> bool { return x." + b + "() > " + str(R.below(1000)) + "; };")
        budget[0] -= len(lines[-1])


def gen_cpp(R, target):
    ind = R.choice(["  ", "    ", "\t", "  "])
    lines = ["#include <" + R.choice(["vector", "string", "cstdint", "memory", "unordered_map"]) + ">", "#include \"" + ident(R) + ".h\"", ""]
    lines.append("namespace " + ident(R, "snake") + " {")
    budget = [target]
    while budget[0] > 0:
        lines.append("")
        if R.chance(1, 3):
            lines.append("template <typename T, std::size_t N = " + str(R.randint(1, 64)) + ">")
        lines.append(R.choice(["static ", "inline ", "", "[[nodiscard]] "]) + R.choice(["int", "void", "bool", "std::string", "T*"]) + " " + ident(R, "pascal") + "(" +
                     ", ".join(R.choice(["int ", "const std::string& ", "T* ", "std::span<const float> "]) + ident(R, "snake") for _ in range(R.below(4))) + ")" + R.choice(["", " const", " noexcept"]) + " {")
        cpp_stmt(R, ind, 1, lines, budget)
        lines.append(ind + "return {};")
        lines.append("}")
    lines.append("}  // namespace")
    if R.chance(1, 6):
        lines = [l + R.choice(["", " ", "\t"]) for l in lines]
    return R.choice(["\n", "\n", "\r\n"]).join(lines) + "\n"


def json_value(R, depth):
    k = R.below(8 if depth < 4 else 5)
    if k == 0:
        return R.choice([0, 1, -1, 42, 3, 1000000, -273]) if R.chance(1, 2) else R.loglen(1, 10 ** 12)
    if k == 1:
        return R.choice([True, False, None])
    if k == 2:
        return R.choice(["", "ok", sentence(R), "line1\nline2", "tab\tsep", "quote \"x\"", "back\\slash", "\u00fcber", "\u6771\u4eac", "\U0001F680", "a/b"])
    if k == 3:
        return "%d.%d" % (R.below(1000), R.below(1000)) if R.chance(1, 2) else ident(R)
    if k == 4:
        return R.choice(["2024-01-02T03:04:05Z", "https://example.org/x?y=1", "#ff8800", "v1.2.3", "N/A"])
    if k <= 6:
        d = {}
        for _ in range(R.below(5)):  # a loop, not a comprehension: key before value on every Python
            key = ident(R, R.choice(["snake", "camel"]))
            d[key] = json_value(R, depth + 1)
        return d
    return [json_value(R, depth + 1) for _ in range(R.below(5))]


def gen_json(R, target):
    obj = {}
    size = 0
    while size < target:
        key = ident(R, R.choice(["snake", "camel"]))
        obj[key] = json_value(R, 0)
        size += len(json.dumps(obj[key], ensure_ascii=False)) + len(key) + 4
    k = R.below(5)
    if k == 0:
        s = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    elif k == 1:
        s = json.dumps(obj, ensure_ascii=True, indent=2)
    elif k == 2:
        s = json.dumps(obj, ensure_ascii=False, indent="\t")
    else:
        s = json.dumps(obj, ensure_ascii=False, indent=R.choice([2, 4]))
    return s


SH_CMDS = ["ls -la", "grep -rn", "find . -name", "sed -e 's/a/b/g'", "awk '{print $1}'", "sort -u", "uniq -c", "wc -l",
           "cat", "tar xzf", "curl -fsSL", "git log --oneline", "docker run --rm", "make -j8", "cmake -S . -B build",
           "python3 -m pip install", "echo", "printf '%s\\n'", "xargs -0", "head -n 20", "tail -f", "chmod +x", "export"]


def gen_shell(R, target):
    lines = ["#!/usr/bin/env bash", "set -euo pipefail"]
    ind = R.choice(["  ", "    ", "\t"])
    size = 0
    while size < target:
        k = R.below(7)
        v = ident(R, "upper")
        if k == 0:
            lines.append(v + "=\"${" + v + ":-" + ident(R, "snake") + "}\"")
        elif k == 1:
            lines.append(R.choice(SH_CMDS) + " \"$" + v + "\" | " + R.choice(SH_CMDS) + " > /tmp/" + ident(R) + ".log 2>&1")
        elif k == 2:
            lines.append("if [ -f \"$" + v + "\" ]; then")
            lines.append(ind + R.choice(SH_CMDS) + " \"$" + v + "\"")
            lines.append("else")
            lines.append(ind + "echo \"missing: $" + v + "\" >&2; exit 1")
            lines.append("fi")
        elif k == 3:
            lines.append("for f in *." + R.choice(["txt", "json", "cc", "py"]) + "; do")
            lines.append(ind + "n=$(" + R.choice(SH_CMDS) + " \"$f\")")
            lines.append(ind + "[[ $n -gt " + str(R.below(100)) + " ]] && echo \"$f: $n\"")
            lines.append("done")
        elif k == 4:
            lines.append("# " + sentence(R))
        elif k == 5:
            lines.append("cat <<'EOF' > " + ident(R) + ".conf")
            lines.append(ident(R) + " = " + str(R.below(1000)))
            lines.append(ind + ident(R) + ": " + sentence(R))
            lines.append("EOF")
        else:
            lines.append(ident(R, "snake") + "() {")
            lines.append(ind + "local x=$1; shift")
            lines.append(ind + "echo \"${x//\\//_}\" \"$@\" | tr '[:lower:]' '[:upper:]'")
            lines.append("}")
        size += len(lines[-1]) + 1
    return "\n".join(lines) + "\n"


def gen_html_sql(R, target):
    if R.chance(1, 2):
        out = ["<!DOCTYPE html>", "<html lang=\"en\">", "<head><meta charset=\"utf-8\"><title>" + sentence(R) + "</title></head>", "<body>"]
        size = 0
        while size < target:
            tag = R.choice(["p", "div", "span", "li", "h2", "td"])
            out.append("  <" + tag + " class=\"" + ident(R, "snake") + "\" data-id=\"" + str(R.below(10 ** 6)) + "\">" + sentence(R).replace("&", "&amp;") + " &nbsp;&lt;x&gt; &#8212; &#x1F600;</" + tag + ">")
            size += len(out[-1])
        out.append("</body></html>")
        return "\n".join(out)
    out = []
    size = 0
    while size < target:
        t = ident(R, "snake")
        out.append("SELECT " + ", ".join(ident(R, "snake") for _ in range(R.randint(1, 5))) + "\nFROM " + t + " AS t\n  LEFT JOIN " + ident(R) +
                   " u ON u.id = t." + ident(R) + "_id\nWHERE t.created_at >= '2024-01-01' AND t.score > " + str(R.below(100)) + "\nORDER BY 2 DESC LIMIT " + str(R.randint(1, 500)) + ";")
        size += len(out[-1])
    return "\n\n".join(out)


def gen_code_medium(R):
    target = R.loglen(200, 4500)
    f = R.choice([gen_python, gen_python, gen_cpp, gen_cpp, gen_json, gen_shell, gen_html_sql])
    return clip(f(R, target), 5000)


def gen_code_short(R):
    k = R.below(8)
    if k == 0:
        return R.choice(["    ", "\t", "  ", "\t\t", "        "]) + ident(R) + " = " + py_expr(R)
    if k == 1:
        return "for (auto& " + ident(R) + " : " + ident(R, "camel") + ") { " + ident(R) + "->" + ident(R, "camel") + "(); }"
    if k == 2:
        return json.dumps(json_value(R, 2), ensure_ascii=R.chance(1, 2))
    if k == 3:
        return R.choice(SH_CMDS) + " " + "/".join(ident(R) for _ in range(R.randint(1, 4))) + R.choice(["", " | " + R.choice(SH_CMDS), " && echo ok", " 2>/dev/null"])
    if k == 4:
        return "def " + ident(R, "snake") + "(self, *args, **kwargs):\n" + R.choice(["    ", "\t"]) + "return " + py_expr(R)
    if k == 5:
        return R.choice(["x->y", "a::b::c", "i++", "--j", "a<<=2", "p&&q||!r", "x!==y", "a?.b??c", "f(*args)", "m[i][j]", "=>", "<=>", "...", "::<>", "#[derive(Debug)]", "@Override", "0..=n", "$(pwd)", "${HOME}", "&&&", "|||"])
    if k == 6:
        return "// " + sentence(R) if R.chance(1, 2) else "# " + sentence(R)
    return "\t" * R.randint(1, 4) + "return " + ident(R) + ";"


# ----------------------------------------------------------------------------------------------------
# Whitespace and line endings

WS_ATOMS = [" ", "\t", "\n", "\r\n", "\r", "\n\n", " \n", "\n ", "\t\n", "\r\r\n", "\n\r", "\u00a0", "\u3000", "\u2003", "\x0b", "\x0c"]


def ws_run(R):
    k = R.below(10)
    if k <= 3:
        return " " * R.randint(1, 40)
    if k == 4:
        return "\t" * R.randint(1, 8)
    if k == 5:
        return "".join(R.choice([" ", "\t"]) for _ in range(R.randint(2, 20)))
    if k == 6:
        return R.choice(["\n", "\r\n", "\r"]) * R.randint(1, 6)
    if k == 7:
        return " " * R.randint(0, 6) + R.choice(["\n", "\r\n"]) + " " * R.randint(0, 6)
    return "".join(R.choice(WS_ATOMS) for _ in range(R.randint(1, 8)))


def small_token(R):
    return R.choice([R.choice(NOUNS), R.choice(ADJS), cap(R.choice(NOUNS)), number(R), R.choice(["!", "?", ".", ",", "(", ")", "-", "\"", "'s", "\u00e9", "\u4e2d", "\U0001F600", "x", "1", "_", "#"])])


def gen_whitespace_short(R):
    k = R.below(8)
    if k == 0:
        return ws_run(R)  # only whitespace
    if k == 1:
        return ws_run(R) + small_token(R) + ws_run(R)
    if k == 2:
        return "".join(small_token(R) + ws_run(R) for _ in range(R.randint(1, 5)))
    if k == 3:
        return " " * R.randint(1, 40) + sentence(R)
    if k == 4:
        return sentence(R) + " " * R.randint(1, 40)
    if k == 5:
        return R.choice(["\n", "\r\n", "\r"]).join(R.choice(["", " ", "  ", "\t", sentence(R)[:30]]) for _ in range(R.randint(2, 6)))
    if k == 6:
        return small_token(R) + " " * R.randint(1, 40) + small_token(R)
    return R.choice(["a\tb", "a \tb", "a\t b", "a  \n  b", " \n", "\n ", "\n\n", "\r\n\r\n", "\r\r", "  \r\n", "\t\t\n", "x\n\n\ny",
                     " ", "  ", "\t", "\n", "\r", "\r\n", " a", "a ", "  a  ", "\ta\t", "a\n", "\na", "\n\na\n\n"])


def gen_whitespace_medium(R):
    target = R.loglen(200, 3000)
    out = []
    size = 0
    while size < target:
        piece = R.choice([sentence(R), ws_run(R), ws_run(R) + small_token(R), " " * R.randint(1, 40), "\n" * R.randint(1, 4), number(R)])
        out.append(piece)
        size += len(piece)
    return "".join(out)


# ----------------------------------------------------------------------------------------------------
# Scripts other than Latin

HANZI = list("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都"
             "然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回"
             "二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东海口使教西再平真听世气信"
             "北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提"
             "感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让"
             "认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步"
             "完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议"
             "形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坏兴切须龍麼體學會國")
ZH_PUNCT = ["\uff0c", "\u3002", "\uff01", "\uff1f", "\u3001", "\uff1b", "\uff1a", "\u201c", "\u201d", "\u300a", "\u300b", "\uff08", "\uff09", "\u2026\u2026", "\u2014\u2014"]
HIRAGANA = crange(0x3041, 0x3093)
KATAKANA = crange(0x30A1, 0x30F6) + ["\u30fc"]
HALFWIDTH_KANA = crange(0xFF66, 0xFF9D)
JA_PARTICLES = ["\u306e", "\u306f", "\u304c", "\u3092", "\u306b", "\u3067", "\u3068", "\u3082", "\u304b\u3089", "\u307e\u3067", "\u3067\u3059", "\u307e\u3057\u305f", "\u3067\u3057\u305f"]
JA_PUNCT = ["\u3002", "\u3001", "\u300c", "\u300d", "\u30fb", "\uff01", "\uff1f", "\u300e", "\u300f"]
HANGUL_COMMON = list("가나다라마바사아자차카타파하이는은을를에서의로도고와과한국어사람시간오늘내일학교친구회사집물밥책길말")
ARABIC_LETTERS = crange(0x0627, 0x063A) + crange(0x0641, 0x064A)
ARABIC_MARKS = crange(0x064B, 0x0652) + ["\u0670"]
HEBREW_LETTERS = crange(0x05D0, 0x05EA)
HEBREW_MARKS = crange(0x05B0, 0x05BC) + ["\u05C1", "\u05C2", "\u05C7"]
DEVA_CONS = crange(0x0915, 0x0939)
DEVA_VOWEL_SIGNS = crange(0x093E, 0x094C)
DEVA_VOWELS = crange(0x0905, 0x0914)
DEVA_OTHER = ["\u094d", "\u0902", "\u0901", "\u0903", "\u093c"]
THAI_CONS = crange(0x0E01, 0x0E2E)
THAI_LEAD = crange(0x0E40, 0x0E44)
THAI_FOLLOW = ["\u0e30", "\u0e32", "\u0e33", "\u0e31", "\u0e34", "\u0e35", "\u0e36", "\u0e37", "\u0e38", "\u0e39"]
THAI_TONE = crange(0x0E48, 0x0E4B) + ["\u0e47", "\u0e4c"]
CYR_LOWER = crange(0x0430, 0x044F) + ["\u0451", "\u0456", "\u0457", "\u0454", "\u0491", "\u045e", "\u0452", "\u045b"]
CYR_CONS = list("\u0431\u0432\u0433\u0434\u0436\u0437\u043a\u043b\u043c\u043d\u043f\u0440\u0441\u0442\u0444\u0445\u0446\u0447\u0448\u0449")
CYR_VOW = list("\u0430\u0435\u0438\u043e\u0443\u044b\u044d\u044e\u044f\u0451\u0456\u0457\u0454")
GREEK_CONS = list("\u03b2\u03b3\u03b4\u03b6\u03b8\u03ba\u03bb\u03bc\u03bd\u03be\u03c0\u03c1\u03c3\u03c4\u03c6\u03c7\u03c8")
GREEK_VOW = list("\u03b1\u03b5\u03b7\u03b9\u03bf\u03c5\u03c9\u03ac\u03ad\u03ae\u03af\u03cc\u03cd\u03ce")
GREEK_LOWER = crange(0x03B1, 0x03C9) + ["\u03ac", "\u03ad", "\u03ae", "\u03af", "\u03cc", "\u03cd", "\u03ce", "\u0390", "\u03b0", "\u03ca", "\u03cb"]


# Everyday words per script (a plain vocabulary list, mixed below with random syllables)
ZH_WORDS = ("中国 我们 今天 时间 工作 学习 问题 发展 经济 社会 世界 国家 人民 电脑 手机 朋友 老师 学生 公司 市场 技术 数据 模型 "
            "文化 历史 生活 城市 北京 上海 天气 吃饭 喜欢 知道 觉得 因为 所以 但是 如果 已经 可以 没有 一个 这个 那个 什么 怎么 "
            "为什么 计算机 人工智能 软件 系统 网络 信息 服务 研究 开始 结束 重要 简单 快乐 中文 汉字 语言 图书馆 火车站 医院").split()
JA_WORDS = ("ありがとう こんにちは 日本語 東京 大阪 勉強 会社 先生 学生 時間 今日 明日 天気 食べる 行きます 見ました 書いて "
            "読みます コンピューター データ テスト ラーメン コーヒー プログラム ネットワーク 電車 駅 病院 図書館 友達 家族 仕事 "
            "問題 大丈夫 すみません おはよう です ます でした ません 日本 世界 言葉 漢字 ひらがな カタカナ").split()
KO_WORDS = ("안녕하세요 감사합니다 한국어 사람 시간 오늘 내일 학교 친구 회사 컴퓨터 데이터 사랑 음식 물 책 공부 하다 합니다 "
            "있습니다 없습니다 그리고 하지만 그래서 서울 부산 선생님 학생 문제 세계 나라 도시 병원 도서관 커피 가족 일 생각 "
            "이것 저것 무엇 어디 언제 왜 어떻게 좋아요 괜찮아요 우리 저는 당신").split()
AR_WORDS = ("مرحبا كتاب مدرسة بيت ماء شمس يوم عمل العربية السلام عليكم شكرا جميل كبير صغير جديد مدينة رجل امرأة طالب معلم "
            "حاسوب بيانات شبكة برنامج لغة عالم وقت اليوم غدا لكن لأن في من إلى على هذا هذه كان يكون "
            "كِتَابٌ مَدْرَسَةٌ السَّلَامُ عَلَيْكُمْ شُكْرًا جَمِيلٌ اللُّغَةُ العَرَبِيَّةُ").split()
HE_WORDS = ("שלום תודה בית ספר מים יום עבודה עיר אדם אישה טוב גדול קטן חדש ישן מחשב נתונים רשת תוכנה שפה עולם זמן היום "
            "מחר אבל כי של את על זה זאת היה יהיה ירושלים תל־אביב שָׁלוֹם תּוֹדָה סֵפֶר בַּיִת").split()
HI_WORDS = ("नमस्ते धन्यवाद भारत हिन्दी पानी किताब घर दिन काम शहर आदमी औरत अच्छा बड़ा छोटा नया पुराना कंप्यूटर डेटा "
            "नेटवर्क भाषा दुनिया समय आज कल लेकिन क्योंकि है हैं था थी और में का की के से को पर यह वह दिल्ली मुंबई "
            "विद्यालय प्रश्न उत्तर ज़िंदगी फ़िल्म क़लम").split()
TH_WORDS = ("สวัสดี ขอบคุณ ประเทศไทย ภาษา น้ำ บ้าน หนังสือ วัน งาน เมือง คน ดี ใหญ่ เล็ก ใหม่ เก่า คอมพิวเตอร์ ข้อมูล "
            "เครือข่าย โลก เวลา วันนี้ พรุ่งนี้ แต่ เพราะ และ ที่ ใน ของ เป็น ไม่ มี ได้ กรุงเทพ โรงเรียน นักเรียน ครู อาหาร").split()
CYR_WORDS = ("дом вода книга работа город время человек день мир жизнь слово дело рука глаз земля друг школа окно море небо "
             "солнце хорошо большой новый первый последний читать писать говорить знать думать видеть компьютер данные сеть "
             "программа язык сегодня завтра но потому что и в на с по для это был будет Москва Киев привіт дякую їжак "
             "ґанок євро Ёлка ещё объём подъезд").split()
EL_WORDS = ("καλημέρα σπίτι νερό βιβλίο άνθρωπος χρόνος ημέρα πόλη θάλασσα ουρανός ήλιος φίλος σχολείο δουλειά καλός μεγάλος "
            "μικρός νέος γράφω διαβάζω λέω ξέρω υπολογιστής δεδομένα δίκτυο γλώσσα κόσμος σήμερα αύριο αλλά επειδή και στο "
            "από για αυτό ήταν Αθήνα Ελλάδα ευχαριστώ παρακαλώ ΑΘΗΝΑ ΕΛΛΗΝΙΚΑ ψυχή ὁ λόγος").split()


def lex(R, words, make, num=1, den=2):
    return R.choice(words) if R.below(den) < num else make(R)


def syll_word(R, n_lo, n_hi, make):
    return "".join(make(R) for _ in range(R.randint(n_lo, n_hi)))


def zh_text(R, target):
    out = []
    size = 0
    while size < target:
        out.append("".join(lex(R, ZH_WORDS, lambda R_: R_.choice(HANZI), 2, 3) for _ in range(R.randint(2, 8))) + R.choice(ZH_PUNCT))
        size += len(out[-1])
        if R.chance(1, 12):
            out.append(R.choice([str(R.below(2100)), "AI", "GPU", " Python ", "2024\u5e74", "%d%%" % R.below(100)]))
    return "".join(out)


def ja_text(R, target):
    out = []
    size = 0
    while size < target:
        w = R.choice([
            lambda: "".join(R.choice(HANZI) for _ in range(R.randint(1, 3))) + R.choice(JA_PARTICLES),
            lambda: "".join(R.choice(KATAKANA) for _ in range(R.randint(2, 6))) + R.choice(JA_PARTICLES),
            lambda: "".join(R.choice(HIRAGANA) for _ in range(R.randint(1, 5))),
            lambda: R.choice(JA_PUNCT),
            lambda: R.choice(JA_WORDS),
            lambda: R.choice(JA_WORDS) + R.choice(JA_PARTICLES),
            lambda: "".join(R.choice(HALFWIDTH_KANA) for _ in range(R.randint(1, 4))),
        ])()
        out.append(w)
        size += len(w)
    return "".join(out) + "\u3002"


def hangul_syllable(R):
    if R.chance(2, 3):
        return R.choice(HANGUL_COMMON)
    return chr(0xAC00 + R.below(11172))


def ko_text(R, target):
    out = []
    size = 0
    while size < target:
        out.append(lex(R, KO_WORDS, lambda R_: syll_word(R_, 1, 5, hangul_syllable), 2, 3) + R.choice(["", "", "", ".", ",", "?", "!"]))
        size += len(out[-1]) + 1
    return " ".join(out)


def ar_word(R):
    w = []
    for _ in range(R.randint(2, 7)):
        w.append(R.choice(ARABIC_LETTERS))
        for _ in range(R.weighted([(5, 0), (4, 1), (1, 2)])):  # diacritics, sometimes stacked in either order
            w.append(R.choice(ARABIC_MARKS))
    if R.chance(1, 15):
        w.insert(R.randint(1, len(w)), "\u0640")  # tatweel
    return "".join(w)


def ar_text(R, target):
    out = []
    size = 0
    while size < target:
        out.append(lex(R, AR_WORDS, ar_word, 2, 3) + R.choice(["", "", "", "\u060c", ".", "\u061f", "!"]))
        if R.chance(1, 15):
            out.append("".join(R.choice(DIGIT_SETS[0]) for _ in range(R.randint(1, 4))))
        if R.chance(1, 30):
            out.append(R.choice(["\u200f", "\u200e", "\u061c"]) + str(R.below(1000)))
        size += len(out[-1]) + 1
    return " ".join(out)


def he_word(R):
    w = []
    for _ in range(R.randint(2, 6)):
        w.append(R.choice(HEBREW_LETTERS))
        if R.chance(1, 3):
            w.append(R.choice(HEBREW_MARKS))
            if R.chance(1, 4):
                w.append(R.choice(HEBREW_MARKS))
    return "".join(w)


def he_text(R, target):
    out = []
    size = 0
    while size < target:
        out.append(lex(R, HE_WORDS, he_word, 2, 3) + R.choice(["", "", "", ",", ".", "\u05be" + he_word(R), "?"]))
        size += len(out[-1]) + 1
    return " ".join(out)


def deva_akshara(R):
    k = R.below(10)
    if k == 0:
        return R.choice(DEVA_VOWELS)
    s = R.choice(DEVA_CONS)
    if k == 1:
        s += "\u094d" + R.choice(DEVA_CONS)  # conjunct
    if k == 2:
        s += "\u093c"  # nukta (decomposed form of the precomposed U+0958.. letters)
    if k <= 6:
        s += R.choice(DEVA_VOWEL_SIGNS)
    if k == 7:
        s += R.choice(["\u0902", "\u0901", "\u0903"])
    if k == 8:
        s = R.choice(crange(0x0958, 0x095F)) + R.choice(DEVA_VOWEL_SIGNS)  # precomposed nukta letters (NFC decomposes them)
    return s


def hi_text(R, target):
    out = []
    size = 0
    while size < target:
        out.append(lex(R, HI_WORDS, lambda R_: syll_word(R_, 1, 4, deva_akshara), 2, 3) + R.choice(["", "", "", "\u0964", ",", "?"]))
        if R.chance(1, 20):
            out.append("".join(R.choice(DIGIT_SETS[2]) for _ in range(R.randint(1, 4))))
        size += len(out[-1]) + 1
    return " ".join(out)


def thai_syll(R):
    s = ""
    if R.chance(1, 3):
        s += R.choice(THAI_LEAD)
    s += R.choice(THAI_CONS)
    if R.chance(1, 2):
        s += R.choice(THAI_FOLLOW)
    if R.chance(1, 3):
        s += R.choice(THAI_TONE)
    if R.chance(1, 3):
        s += R.choice(THAI_CONS)
    return s


def th_text(R, target):
    out = []
    size = 0
    while size < target:  # Thai: no spaces between words, spaces between phrases
        out.append("".join(lex(R, TH_WORDS, thai_syll, 2, 3) for _ in range(R.randint(2, 8))))
        if R.chance(1, 15):
            out.append("".join(R.choice(DIGIT_SETS[3]) for _ in range(R.randint(1, 4))))
        size += len(out[-1]) + 1
    return " ".join(out)


def cyr_word(R):
    w = "".join(R.choice(CYR_CONS) + R.choice(CYR_VOW) + (R.choice(CYR_LOWER) if R.chance(1, 3) else "") for _ in range(R.randint(1, 4)))
    k = R.below(8)
    if k == 0:
        return w.upper()
    if k <= 2:
        return cap(w)
    if k == 3:
        return w + "\u0438\u0306"  # и + combining breve (NFC: й)
    return w


def cyr_text(R, target):
    out = []
    size = 0
    while size < target:
        out.append(lex(R, CYR_WORDS, cyr_word, 2, 3) + R.choice(["", "", "", ",", ".", "!", "?", " \u2014", ":", "\u00bb"]))
        size += len(out[-1]) + 1
    return " ".join(out)


def greek_word(R):
    w = "".join(R.choice(GREEK_CONS) + R.choice(GREEK_VOW) + (R.choice(GREEK_LOWER) if R.chance(1, 4) else "") for _ in range(R.randint(1, 4)))
    if w.endswith("\u03c3"):
        w = w[:-1] + "\u03c2"
    k = R.below(10)
    if k == 0:
        return w.upper()
    if k <= 2:
        return cap(w)
    if k == 3:
        return w + "\u03b1\u0301"  # decomposed tonos
    if k == 4:
        return w + R.choice(["\u1f71", "\u1f73", "\u1f00", "\u1f10", "\u1fb6"])  # polytonic / oxia forms
    return w


def greek_text(R, target):
    out = []
    size = 0
    while size < target:
        out.append(lex(R, EL_WORDS, greek_word, 2, 3) + R.choice(["", "", "", ",", ".", "\u037e", "\u0387", ";"]))
        size += len(out[-1]) + 1
    return " ".join(out)


SCRIPT_GENS = [zh_text, ja_text, ko_text, ar_text, he_text, hi_text, th_text, cyr_text, greek_text]


def gen_multilingual_short(R):
    f = R.choice(SCRIPT_GENS)
    s = f(R, R.loglen(4, 80))
    if R.chance(1, 6):
        s = sentence(R) + " " + s
    if R.chance(1, 10):
        s += " " + number(R)
    return clip(s, 200)


def gen_multilingual_medium(R):
    target = R.loglen(100, 2500)
    if R.chance(1, 4):  # mixed-script paragraph
        out = []
        size = 0
        while size < target:
            piece = R.choice(SCRIPT_GENS + [lambda R_, t: sentence(R_)])(R, R.loglen(10, 200))
            out.append(piece)
            size += len(piece)
        return R.choice([" ", "\n", " | ", "\n\n"]).join(out)
    f = R.choice(SCRIPT_GENS)
    paras = []
    size = 0
    while size < target:
        p = f(R, R.randint(50, 600))
        paras.append(p)
        size += len(p)
    return R.choice(["\n", "\n\n", " "]).join(paras)


# ----------------------------------------------------------------------------------------------------
# Emoji

EMOJI_SINGLE = [cps(c) for c in (0x1F600, 0x1F602, 0x1F642, 0x1F914, 0x1F389, 0x1F680, 0x1F525, 0x1F30D, 0x1F355, 0x1F40D,
                                 0x1F980, 0x1F4A1, 0x1F4E6, 0x2705, 0x274C, 0x2B50, 0x2615, 0x26A1, 0x2728, 0x1F64F, 0x1F44D,
                                 0x1F44B, 0x1F4AF, 0x1F916, 0x1F9EA, 0x1FAE0, 0x1FA90, 0x1F60D, 0x1F62D, 0x1F973, 0x1F440,
                                 0x1F9E0, 0x1F4C8, 0x1F512, 0x1F6A7, 0x231B, 0x23F0, 0x1F004, 0x1F0CF, 0x1F170, 0x3030, 0x303D)]
EMOJI_VS = [cps(0x2764, 0xFE0F), cps(0x263A, 0xFE0F), cps(0x270C, 0xFE0F), cps(0x2600, 0xFE0F), cps(0x2714, 0xFE0F),
            cps(0x26A0, 0xFE0F), cps(0x2122, 0xFE0F), cps(0x00A9, 0xFE0F), cps(0x2764, 0xFE0E), cps(0x2603, 0xFE0E),
            cps(0x1F610, 0xFE0F), cps(0x0031, 0xFE0F), cps(0x2194, 0xFE0F), cps(0x3299, 0xFE0F)]
SKIN = [0x1F3FB, 0x1F3FC, 0x1F3FD, 0x1F3FE, 0x1F3FF]
SKIN_BASES = [0x1F44D, 0x1F44B, 0x1F64C, 0x270B, 0x1F469, 0x1F9D1, 0x1F468, 0x1F476, 0x1F937, 0x1F44F]
ZWJ = [
    cps(0x1F468, 0x200D, 0x1F469, 0x200D, 0x1F467, 0x200D, 0x1F466), cps(0x1F469, 0x200D, 0x1F4BB), cps(0x1F9D1, 0x200D, 0x1F680),
    cps(0x1F468, 0x1F3FD, 0x200D, 0x1F52C), cps(0x1F469, 0x200D, 0x2764, 0xFE0F, 0x200D, 0x1F468), cps(0x1F3F3, 0xFE0F, 0x200D, 0x1F308),
    cps(0x1F43B, 0x200D, 0x2744, 0xFE0F), cps(0x1F441, 0xFE0F, 0x200D, 0x1F5E8, 0xFE0F), cps(0x1F9D1, 0x1F3FF, 0x200D, 0x1F91D, 0x200D, 0x1F9D1, 0x1F3FB),
    cps(0x1F469, 0x1F3FE, 0x200D, 0x2695, 0xFE0F), cps(0x1F468, 0x200D, 0x1F373), cps(0x1F469, 0x200D, 0x1F692), cps(0x1F9D1, 0x200D, 0x1F3A8),
    cps(0x1F3C3, 0x200D, 0x2640, 0xFE0F), cps(0x1F415, 0x200D, 0x1F9BA), cps(0x1F469, 0x200D, 0x1F469, 0x200D, 0x1F466),
]
COUNTRIES = ["US", "JP", "DE", "FR", "BR", "IN", "CN", "KR", "GB", "CA", "IT", "ES", "MX", "NG", "EG", "KE", "SE", "NO", "FI", "PL", "UA", "AU", "AR", "ZA"]
TAG_FLAG = cps(0x1F3F4, 0xE0067, 0xE0062, 0xE0065, 0xE006E, 0xE0067, 0xE007F)


def flag(cc):
    return "".join(chr(0x1F1E6 + ord(c) - 65) for c in cc)


def emoji(R):
    k = R.below(8)
    if k <= 1:
        return R.choice(EMOJI_SINGLE)
    if k == 2:
        return R.choice(EMOJI_VS)
    if k == 3:
        return chr(R.choice(SKIN_BASES)) + (chr(R.choice(SKIN)) if R.chance(4, 5) else "")
    if k == 4:
        return R.choice(ZWJ)
    if k == 5:
        return flag(R.choice(COUNTRIES)) if R.chance(5, 6) else "".join(chr(0x1F1E6 + R.below(26)) for _ in range(R.randint(1, 5)))
    if k == 6:
        c = R.choice("0123456789#*")
        return c + ("\ufe0f" if R.chance(3, 4) else "") + "\u20e3"
    return R.choice([TAG_FLAG, chr(0x1F3FB), "\u200d", "\ufe0f", cps(0x1F468, 0x200D), cps(0x200D, 0x1F469)])  # odd pieces


def gen_emoji_short(R):
    k = R.below(5)
    if k == 0:
        return "".join(emoji(R) for _ in range(R.randint(1, 12)))
    if k == 1:
        return " ".join(emoji(R) for _ in range(R.randint(1, 10)))
    if k == 2:
        return sentence(R) + " " + "".join(emoji(R) for _ in range(R.randint(1, 4)))
    if k == 3:
        w = sentence(R).split(" ")
        return "".join(x + (emoji(R) if R.chance(1, 3) else " ") for x in w)
    return emoji(R) + R.choice(["", " ", "1", "a", "'s", "!", "\n", "123", "\u4e2d"]) + emoji(R)


# ----------------------------------------------------------------------------------------------------
# Combining marks and normalization (NFC changes these; Qwen3 normalizes with NFC)

NFC_CASES = [
    "e\u0301", "\u00e9", "cafe\u0301", "caf\u00e9", "A\u030a", "\u212b", "\u00c5", "\u2126", "\u03a9", "K", "\u212a",
    "a\u0323\u0302", "a\u0302\u0323", "\u1ead", "q\u0307\u0323", "q\u0323\u0307", "\u1e9b\u0323", "\u0344", "\u0340", "\u0341",
    "\u0f73", "\u2adc", "\u2add\u0338", "\u037e", "\u0387", "\u1f71", "\u1fbb", "\uf900", "\uf9ff", "\ufa0d", "\u2000", "\u2001",
    "\u0958", "\u0915\u093c", "\u09dc", "\ufb1d", "\u05d9\u05b4", "\u0622", "\u0627\u0653", "\u0651\u064e", "\u064e\u0651",
    "\u1100\u1161", "\u1100\u1161\u11a8", "\uac00\u11a8", "\u1112\u1161\u11ab\u1100\u1173\u11af", "\u1113\u1161", "\u3131\u314f",
    "o\u0308\u0304", "\u022b", "n\u0303", "\u00f1", "u\u0308", "\u00fc", "c\u0327", "I\u0307", "\u0130", "i\u0307\u0301",
    "\u0301", " \u0301", "\u0301abc", "\u0300\u0301\u0302", "\u1e0b\u0323", "\u1e0d\u0307", "d\u0323\u0307", "\u01c4", "\ufb01",
    "\u0e33", "\u0e4d\u0e32", "\u30ac", "\u30ab\u3099", "\u304c", "\u304b\u3099", "\uff76\uff9e", "\u3099", "\u0438\u0306", "\u0439",
    "\u0435\u0308", "\u0451", "\u1e69", "s\u0323\u0307", "s\u0307\u0323", "\U0001d15e", "\U0001d157\U0001d165", "\U0002f800",
    "\u00e5\u0301", "\u01fb", "\u0dda", "\u0dd9\u0dca", "\u0b48", "\u0b47\u0b56", "\u1026", "\u1025\u102e",
]
COMBINING = crange(0x0300, 0x034E) + crange(0x0350, 0x036F) + crange(0x1AB0, 0x1ABD) + crange(0x20D0, 0x20DC) + crange(0x1DC0, 0x1DCA)
BASES = list("aeiouAEIOUnNcCsSzZyY") + ["\u03b1", "\u0430", "\u05d0", "\u0627", "1", " ", "\u4e2d", "\U0001F600", "_", "."]


def gen_combining(R):
    k = R.below(7)
    if k <= 1:
        return R.choice(["", " ", "x"]).join(R.choice(NFC_CASES) for _ in range(R.randint(1, 8)))
    if k == 2:  # a word with some letters decomposed
        w = sentence(R)
        table = {"e": "e\u0301", "a": "a\u0300", "o": "o\u0302", "u": "u\u0308", "n": "n\u0303", "c": "c\u0327", "i": "i\u0308"}
        return "".join(table[c] if c in table and R.chance(1, 3) else c for c in w)
    if k == 3:  # zalgo-like stacks in random canonical-class order
        return "".join(R.choice(BASES) + "".join(R.choice(COMBINING) for _ in range(R.randint(1, 12))) for _ in range(R.randint(1, 8)))
    if k == 4:  # decomposed Hangul jamo words: NFC composes them into syllables
        out = []
        for _ in range(R.randint(1, 6)):
            w = ""
            for _ in range(R.randint(1, 4)):
                w += chr(0x1100 + R.below(19)) + chr(0x1161 + R.below(21))
                if R.chance(1, 2):
                    w += chr(0x11A8 + R.below(27))
            out.append(w)
        return " ".join(out)
    if k == 5:  # Vietnamese-like text, tones decomposed or precomposed
        vowels = ["a", "\u0103", "\u00e2", "e", "\u00ea", "i", "o", "\u00f4", "\u01a1", "u", "\u01b0", "y"]
        tones = ["", "\u0300", "\u0301", "\u0303", "\u0309", "\u0323"]
        words = []
        for _ in range(R.randint(2, 10)):
            w = R.choice(["", "b", "c", "d", "\u0111", "g", "h", "kh", "l", "m", "n", "ng", "nh", "ph", "qu", "t", "th", "tr", "v", "x"]) + R.choice(vowels) + R.choice(tones) + R.choice(["", "", "n", "ng", "c", "t", "m", "nh", "i", "o"])
            words.append(w)
        return cap(" ".join(words)) + "."
    if k == 6:  # compatibility ideographs and singletons among ordinary text
        return sentence(R)[:40] + " " + "".join(chr(0xF900 + R.below(0x10E)) for _ in range(R.randint(1, 6))) + " " + R.choice(NFC_CASES)
    return ""


# ----------------------------------------------------------------------------------------------------
# Special tokens written inside text, and near misses

SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>",
            "<|python_tag|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_0|>", "<|reserved_special_token_5|>",
            "<|reserved_special_token_247|>", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>",
            "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<|object_ref_start|>", "<|box_end|>", "<|vision_pad|>",
            "<|image_pad|>", "<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<s>", "</s>", "<unk>"]
NEAR_MISSES = ["<|im_start|", "|im_start|>", "<|im_start |>", "<| im_start|>", "<|IM_START|>", "<|im_Start|>", "< s>", "<s >", "<S>",
               "<<s>>", "</ s>", "<\\s>", "<|eot_id|", "<|eot_id|>>", "<<|eot_id|>", "<|eot_id||>", "<|reserved_special_token_999|>",
               "<|endoftext|", "<|endoftext|>|>", "<think", "</think >", "<THINK>", "<|begin_of_text|", "begin_of_text", "<|>", "<||>",
               "<|im_end|\n>", "<|im\u2009end|>", "\uff1c|im_start|\uff1e", "<unk", "<un k>", "<|start_header_id|>\u200b", "<s\u0301>"]


def gen_specials(R):
    k = R.below(7)
    if k == 0:  # llama 3 chat transcript
        s = "<|begin_of_text|>" if R.chance(1, 2) else ""
        for role in R.sample(["system", "user", "assistant", "ipython", "tool"], R.randint(1, 4)):
            s += "<|start_header_id|>" + role + "<|end_header_id|>\n\n" + paragraph(R, R.randint(20, 300)) + "<|eot_id|>"
        return s + R.choice(["", "<|start_header_id|>assistant<|end_header_id|>\n\n"])
    if k == 1:  # ChatML (Qwen)
        s = ""
        for role in ["system", "user", "assistant"][:R.randint(1, 3)]:
            body = paragraph(R, R.randint(20, 300))
            if role == "assistant" and R.chance(1, 2):
                body = "<think>\n" + (paragraph(R, 100) if R.chance(1, 2) else "") + "\n</think>\n\n" + body
            if role == "assistant" and R.chance(1, 4):
                body += "\n<tool_call>\n" + json.dumps({"name": ident(R), "arguments": {ident(R): R.below(100)}}, ensure_ascii=False) + "\n</tool_call>"
            s += "<|im_start|>" + role + "\n" + body + "<|im_end|>\n"
        return s + R.choice(["", "<|im_start|>assistant\n", "<|endoftext|>"])
    if k == 2:  # llama 2 chat
        return "<s>[INST] " + R.choice(["<<SYS>>\n" + sentence(R) + "\n<</SYS>>\n\n", ""]) + sentence(R) + " [/INST] " + sentence(R) + " </s>" + R.choice(["", "<s>[INST] " + sentence(R) + " [/INST]"])
    if k == 3:  # special tokens glued to words, spaces, newlines, each other
        out = []
        for _ in range(R.randint(1, 8)):
            out.append(R.choice(SPECIALS))
            out.append(R.choice(["", " ", "  ", "\n", "\n\n", "word", " word ", "\u4e2d", "\U0001F600", "123", "'s", "\t", ".", "\u00e9"]))
        return "".join(out)
    if k == 4:  # near misses
        return R.choice(["", "x", " ", "\n"]).join(R.choice(NEAR_MISSES + SPECIALS[:3]) for _ in range(R.randint(1, 5)))
    if k == 5:  # FIM
        return "<|fim_prefix|>" + gen_code_short(R) + "<|fim_suffix|>" + gen_code_short(R) + "<|fim_middle|>"
    return sentence(R) + " " + R.choice(SPECIALS) + " " + sentence(R)


# ----------------------------------------------------------------------------------------------------
# Very long words and runs

ASCII_LOWER = [chr(c) for c in range(97, 123)]
ASCII_LETTERS = ASCII_LOWER + [chr(c) for c in range(65, 91)]
PSEUDO_SYLL = ["ka", "to", "ri", "mon", "ex", "tra", "ion", "al", "iz", "ation", "pre", "un", "ble", "ness", "ment", "ous", "ing", "er", "st", "qu"]


def gen_long_run(R):
    return clip(long_run(R), 5000)


def long_run(R):
    n = R.loglen(100, 5000)
    k = R.below(14)
    if k == 0:
        return "".join(R.choice(ASCII_LOWER) for _ in range(n))
    if k == 1:
        return "".join(R.choice(ASCII_LETTERS) for _ in range(n))
    if k == 2:
        return R.choice(ASCII_LETTERS + ["\u00e9", "\u0436", "\u03bb"]) * n
    if k == 3:
        s = ""
        while len(s) < n:
            s += R.choice(PSEUDO_SYLL)
        return s
    if k == 4:
        return "".join(R.choice(R.choice([CYR_LOWER, GREEK_LOWER, HANZI, HEBREW_LETTERS, ARABIC_LETTERS, THAI_CONS, HIRAGANA])) for _ in range(n))
    if k == 5:
        return "".join(hangul_syllable(R) for _ in range(n // 2))
    if k == 6:
        return digits(R, n, True)
    if k == 7:
        return R.choice(["0", "9", "1234567890", "31415926535", "\u0665", "\uff17"]) * (n // 5 + 1)
    if k == 8:
        return R.choice(["!", ".", "-", "=", "#", "*", "~", "_", "/", "?!", "\u2026", "\u2014", "\u3001", ")", "'", "\""]) * n
    if k == 9:
        return "".join(R.choice("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") for _ in range(n))
    if k == 10:
        return emoji(R) * (n // 4 + 1)
    if k == 11:
        return R.choice([" ", "\t", "\n", " \n", "\r\n", "\u3000", "\u00a0"]) * n
    if k == 12:
        return "".join(R.choice("0123456789abcdef") for _ in range(n))  # hex blob
    return "".join(R.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") for _ in range(n)) + "=="


# ----------------------------------------------------------------------------------------------------
# URLs, e-mail, paths; markdown; LaTeX; punctuation

TLDS = ["com", "org", "net", "io", "dev", "co.uk", "de", "jp", "example", "test", "\u0440\u0444", "\u4e2d\u56fd"]


def host(R):
    return ".".join(ident(R, "snake").replace("_", R.choice(["-", ""])) for _ in range(R.randint(1, 3))) + "." + R.choice(TLDS)


def gen_url(R):
    k = R.below(8)
    if k <= 2:
        path = "/".join(ident(R, R.choice(["snake", "camel"])) for _ in range(R.randint(0, 5)))
        q = "&".join(ident(R) + "=" + R.choice([str(R.below(10 ** 6)), ident(R), "%20", "a%2Fb", "%E2%9C%93", "true", ""]) for _ in range(R.randint(0, 4)))
        return R.choice(["https://", "http://", "ftp://", "ws://", "", "www."]) + host(R) + R.choice(["", ":8080", ":443"]) + "/" + path + ("?" + q if q else "") + R.choice(["", "#" + ident(R), "#L10-L20"])
    if k == 3:
        return ident(R, "snake").replace("_", R.choice([".", "_", "-", ""])) + R.choice(["", "+tag", "+" + str(R.below(100))]) + "@" + host(R)
    if k == 4:
        return R.choice(["C:\\Users\\", "D:\\Program Files (x86)\\", "\\\\server\\share\\"]) + "\\".join(ident(R, "pascal") for _ in range(R.randint(1, 4))) + R.choice([".txt", ".exe", ".dll", ""])
    if k == 5:
        return R.choice(["/usr/local/bin/", "~/", "./", "../", "/etc/", "/var/log/"]) + "/".join(ident(R) for _ in range(R.randint(1, 5))) + R.choice([".py", ".cc", ".tar.gz", "/", ".so.1.2"])
    if k == 6:
        return R.choice(["[2001:db8::%x]" % R.below(65536), "fe80::1%eth0", "::1", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "mailto:" + ident(R) + "@" + host(R), "urn:isbn:0451450523", "data:text/plain;base64,SGVsbG8="])
    return sentence(R)[:-1] + " (see " + gen_url_simple(R) + ")."


def gen_url_simple(R):
    return "https://" + host(R) + "/" + ident(R)


def gen_markdown(R):
    target = R.loglen(200, 4000)
    out = ["#" * R.randint(1, 6) + " " + sentence(R)[:-1]]
    size = 0
    while size < target:
        k = R.below(10)
        if k == 0:
            out.append("")
            out.append("#" * R.randint(1, 4) + " " + cap(" ".join(R.choice(NOUNS) for _ in range(R.randint(1, 4)))))
        elif k == 1:
            for i in range(R.randint(1, 5)):
                out.append(R.choice(["- ", "* ", "%d. " % (i + 1), "  - ", "    * ", "\t- ", "- [ ] ", "- [x] "]) + sentence(R))
        elif k == 2:
            out.append("")
            out.append("```" + R.choice(["python", "cpp", "bash", "json", ""]))
            out.append(gen_code_short(R))
            out.append("```")
        elif k == 3:
            cols = R.randint(2, 5)
            out.append("| " + " | ".join(cap(R.choice(NOUNS)) for _ in range(cols)) + " |")
            out.append("|" + "|".join(R.choice(["---", ":---", "---:", ":---:"]) for _ in range(cols)) + "|")
            for _ in range(R.randint(1, 4)):
                out.append("| " + " | ".join(R.choice([number(R), R.choice(ADJS), "`x`", "**b**", ""]) for _ in range(cols)) + " |")
        elif k == 4:
            out.append("> " + sentence(R))
            out.append(">> " + sentence(R))
        elif k == 5:
            out.append(R.choice(["---", "***", "___", "* * *"]))
        elif k == 6:
            out.append("See [" + R.choice(NOUNS) + "](" + gen_url_simple(R) + ") and ![" + R.choice(ADJS) + "](img/" + ident(R) + ".png \"title\")[^" + str(R.randint(1, 9)) + "].")
        else:
            w = sentence(R).split(" ")
            out.append(" ".join(R.choice(["**%s**", "*%s*", "_%s_", "`%s`", "~~%s~~", "%s", "%s", "%s", "<kbd>%s</kbd>"]) % x for x in w))
        size += len(out[-1]) + 1
    return clip("\n".join(out) + R.choice(["", "\n"]), 5000)


LATEX_SNIPPETS = [r"\frac{a}{b}", r"\sqrt[n]{x^2 + y^2}", r"\sum_{i=1}^{n} x_i^2", r"\int_0^\infty e^{-x^2}\,dx = \frac{\sqrt{\pi}}{2}",
                  r"\alpha + \beta \geq \gamma", r"\mathbb{R}^{d \times d}", r"\left( \frac{\partial f}{\partial x} \right)",
                  r"\begin{pmatrix} 1 & 0 \\ 0 & 1 \end{pmatrix}", r"\lim_{n \to \infty} \left(1 + \frac{1}{n}\right)^n = e",
                  r"\mathcal{O}(n \log n)", r"\hat{\theta}_{\text{MLE}}", r"\operatorname{softmax}(QK^\top / \sqrt{d_k})V",
                  r"a \equiv b \pmod{m}", r"\{x \in \mathbb{Z} : x > 0\}", r"\nabla \cdot \mathbf{E} = \rho / \varepsilon_0",
                  r"P(A \mid B) = \frac{P(B \mid A) P(A)}{P(B)}", r"\|x\|_2", r"\binom{n}{k}", r"x_{i,j}^{(t+1)}", r"\text{if } x < 0"]


def gen_latex(R):
    k = R.below(5)
    if k == 0:
        return "$" + R.choice(LATEX_SNIPPETS) + "$"
    if k == 1:
        return sentence(R)[:-1] + ", where $" + R.choice(LATEX_SNIPPETS) + "$ and $" + R.choice(LATEX_SNIPPETS) + "$."
    if k == 2:
        return "$$\n" + R.choice(LATEX_SNIPPETS) + "\n$$"
    if k == 3:
        env = R.choice(["equation", "align", "align*", "gather"])
        rows = [R.choice(LATEX_SNIPPETS) + R.choice([" &= ", " & \\leq "]) + R.choice(LATEX_SNIPPETS) for _ in range(R.randint(1, 6))]
        return "\\begin{" + env + "}\n" + " \\\\\n".join("  " + r for r in rows) + "\n\\end{" + env + "}"
    out = ["\\documentclass[11pt]{article}", "\\usepackage{amsmath,amssymb}", "% " + sentence(R), "\\begin{document}",
           "\\section{" + cap(R.choice(NOUNS)) + "}"]
    for _ in range(R.randint(2, 12)):
        out.append(sentence(R) + " $" + R.choice(LATEX_SNIPPETS) + "$ " + sentence(R) + R.choice(["", "~\\cite{" + ident(R) + "}", "\\footnote{" + sentence(R) + "}"]))
        out.append("")
    out.append("\\end{document}")
    return "\n".join(out)


PUNCT_ATOMS = ["?!", "!!", "!!!", "?!?!", "...", "\u2026", "--", "\u2014", "\u2013", "''", "\"\"", "\u00ab\u00bb", "\u2039\u203a", "\u201e\u201c",
               "\u201a\u2018", "\u00bf", "\u00a1", "\u203d", "\u203b", "\u00a7", "\u00b6", "\u2022", "\u00b7", "()", "[]", "{}", "<>", "=>", "->",
               "::", "&&", "||", ";;", "@@", "#!", "$$", "%%", "^^", "~~", "``", "|>", "<=>", "!==", ">>=", "\uff01", "\uff1f", "\u3002",
               "\u3001", "\u300c\u300d", "\u300e\u300f", "\u3010\u3011", "\u3008\u3009", "\u300a\u300b", "\u2020", "\u2021", "\u2030",
               "\u2032\u2033", "\u00b0", "\u00d7", "\u00f7", "\u00b1", "\u2260", "\u2264", "\u2265", "\u221e", "\u2192", "\u21d2", "\u2190",
               "\u2191", "\u2713", "\u2717", "\u2605", "\u2606", "\u25cf", "\u25a0", "\u2591\u2592\u2593", "\u250c\u2500\u2510", "\u00a9", "\u00ae", "\u2122", "\u0021\u0301",
               "\u2581", "\u2581\u2581", "\u0120", "\u010a", "<0x20>"]


def gen_punct(R):
    k = R.below(5)
    if k == 0:
        return "".join(R.choice(PUNCT_ATOMS) for _ in range(R.randint(1, 10)))
    if k == 1:
        return " ".join(R.choice(PUNCT_ATOMS) for _ in range(R.randint(1, 10)))
    if k == 2:
        return "".join(R.choice(NOUNS) + R.choice(PUNCT_ATOMS + [",", ".", ";", ":"]) for _ in range(R.randint(1, 8)))
    if k == 3:
        return "".join(R.choice("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") for _ in range(R.randint(1, 30)))
    return R.choice(["(", "[", "{", "\"", "'", "\u201c", "\u00ab", "<"]) + sentence(R)[:-1] + R.choice([")", "]", "}", "\"", "'", "\u201d", "\u00bb", ">"]) + R.choice(PUNCT_ATOMS)


# ----------------------------------------------------------------------------------------------------
# Control and format characters, exotic spaces; private use and rare planes

CONTROLS = ["\t", "\x0b", "\x0c", "\x00", "\x01", "\x07", "\x08", "\x1b", "\x1c", "\x1d", "\x1e", "\x1f", "\x7f", "\x80", "\x85", "\x9f",
            "\u00a0", "\u1680", "\u2000", "\u2002", "\u2007", "\u2009", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000",
            "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u180e", "\u061c", "\u200e", "\u200f", "\u202a", "\u202e",
            "\u2066", "\u2069", "\ufff9", "\ufffc", "\ufffd", "\u034f", "\u115f", "\u3164", "\uffa0"]


def gen_controls(R):
    k = R.below(6)
    c = R.choice(CONTROLS)
    if k == 0:
        return c
    if k == 1:
        return R.choice(NOUNS) + c + R.choice(NOUNS)
    if k == 2:
        return c * R.randint(2, 6) + sentence(R) + c * R.randint(0, 3)
    if k == 3:
        return c.join(sentence(R).split(" "))
    if k == 4:
        return "".join(R.choice(CONTROLS) + R.choice(["", "a", "1", " ", "\n", ".", "\u4e2d", "'s"]) for _ in range(R.randint(1, 10)))
    return "\x1b[" + str(R.randint(0, 97)) + "m" + sentence(R) + "\x1b[0m" if R.chance(1, 2) else "\ufeff" + sentence(R)


RARE_RANGES = [(0xE000, 0xF8FF), (0xF0000, 0xFFFFD), (0x100000, 0x10FFFD), (0xFDD0, 0xFDEF), (0x10330, 0x1034A), (0x10400, 0x1044F),
               (0x1D400, 0x1D6A5), (0x20000, 0x2A6D6), (0x3400, 0x4DB5), (0x13000, 0x1342E), (0x12000, 0x1236E), (0x1D100, 0x1D126),
               (0x10900, 0x10915), (0x1F000, 0x1F02B), (0x40000, 0x4FFFF), (0x2F800, 0x2FA1D), (0xE0020, 0xE007F)]
RARE_SINGLES = [0xFFFE, 0xFFFF, 0x1FFFE, 0x1FFFF, 0x10FFFE, 0x10FFFF, 0x10FFFD, 0xE0001, 0xFFFC, 0xFFFD]


def gen_rare(R):
    out = []
    for _ in range(R.randint(1, 12)):
        if R.chance(1, 6):
            out.append(chr(R.choice(RARE_SINGLES)))
        else:
            a, b = R.choice(RARE_RANGES)
            out.append(chr(R.randint(a, b)))
        if R.chance(1, 3):
            out.append(R.choice([" ", "a", "1", "'s", ".", "\n", "\u00e9"]))
    return "".join(out)


# ----------------------------------------------------------------------------------------------------
# Single characters and tiny strings

TINY_EXTRA = ["\u00e9", "e\u0301", "\u4e2d", "\ud55c", "\U0001F600", "\u00a0", "\u3000", "\u2028", "\u2029", "\ufeff", "\u200b", "\u0085",
              "\U0010FFFD", "\u0301", "\u2581", "\u2581\u2581", " \u2581", "\u0120", "\u010a", "\u00ff", "\u0100", "<0x41>", "<0x0A>", "\u0130",
              "  ", "   ", "\n\n", "\r\n", " \n", "\t\t", "'s", "'S", "'ll", "'LL", "1 ", " 1", "12", "123", "1234", "a1", "1a", "..", "...",
              "\u2026", "--", "\u00bd", "\u2460", "\u0665", "\U0001F1FA\U0001F1F8", "\U0001F1FA", "1\ufe0f\u20e3", "\u1100\u1161", "\uac00",
              "\u3042", "\u30a2", "\u0627", "\u05d0", "\u0915\u094d", "\u0e01", "\u0436", "\u03bb", "\u00df", "\u1e9e", "\ufb01", "\u212a"]


def tiny_lines():
    return [chr(c) for c in range(128)] + TINY_EXTRA


# ----------------------------------------------------------------------------------------------------
# Mixed documents (medium and long)

MIX_PIECES = [
    lambda R: paragraph(R, R.randint(100, 1500)),
    lambda R: gen_code_medium(R),
    lambda R: gen_numbers_short(R),
    lambda R: gen_multilingual_short(R),
    lambda R: gen_emoji_short(R),
    lambda R: gen_contractions(R),
    lambda R: gen_specials(R),
    lambda R: gen_url(R),
    lambda R: gen_markdown(R),
    lambda R: gen_latex(R),
    lambda R: gen_whitespace_short(R),
    lambda R: gen_combining(R),
    lambda R: gen_controls(R),
    lambda R: gen_punct(R),
]


def gen_mixed(R, lo, hi):
    target = R.loglen(lo, hi)
    out = []
    size = 0
    while size < target:
        piece = R.choice(MIX_PIECES)(R)
        out.append(piece)
        size += len(piece)
    return clip("".join(R.choice(["\n\n", "\n", " ", "\r\n", "\n\n\n", ""]) + p for p in out), hi)


def gen_mixed_medium(R):
    return gen_mixed(R, 1000, 5000)


def gen_mixed_long(R):
    return gen_mixed(R, 20000, 100000)


# ----------------------------------------------------------------------------------------------------
# The corpus: categories in a fixed order; each category draws from its own PRNG stream.

CATEGORIES = [
    # name, line count, generator
    ("empty", 1, lambda R: ""),
    ("tiny", None, None),  # tiny_lines(): each ASCII code point alone, then short edge strings
    ("prose_short", 3000, gen_prose_short),
    ("prose_medium", 300, gen_prose_medium),
    ("contractions", 1200, gen_contractions),
    ("numbers_short", 2400, gen_numbers_short),
    ("numbers_medium", 50, gen_numbers_medium),
    ("code_short", 700, gen_code_short),
    ("code_medium", 250, gen_code_medium),
    ("whitespace_short", 1500, gen_whitespace_short),
    ("whitespace_medium", 100, gen_whitespace_medium),
    ("multilingual_short", 2500, gen_multilingual_short),
    ("multilingual_medium", 160, gen_multilingual_medium),
    ("emoji", 900, gen_emoji_short),
    ("combining_nfc", 900, gen_combining),
    ("special_tokens", 800, gen_specials),
    ("long_runs", 180, gen_long_run),
    ("urls_paths", 700, gen_url),
    ("markdown", 100, gen_markdown),
    ("latex", 300, gen_latex),
    ("punctuation", 700, gen_punct),
    ("controls_spaces", 700, gen_controls),
    ("private_rare", 400, gen_rare),
    ("mixed_medium", 120, gen_mixed_medium),
    ("mixed_long", 10, gen_mixed_long),
]


def generate(seed):
    """Returns [(category, [strings])]."""
    out = []
    for idx, (name, count, fn) in enumerate(CATEGORIES):
        R = Rng(seed * 1000003 + idx * 7919 + 17)
        if name == "tiny":
            lines = tiny_lines()
        else:
            lines = [fn(R) for _ in range(count)]
        out.append((name, lines))
    return out


def to_jsonl(groups):
    parts = []
    for _, lines in groups:
        for s in lines:
            s.encode("utf-8")  # raises on a lone surrogate: the text must be valid UTF-8
            parts.append(json.dumps(s, ensure_ascii=False))
    return ("\n".join(parts) + "\n").encode("utf-8")


def write_output(data, out, level):
    if out.endswith(".zst"):
        if not shutil.which("zstd"):
            sys.exit("make_tokenizer_text: the zstd CLI is needed for a .zst output (or give --out PATH.jsonl)")
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        # From a file, not a pipe: then the frame records its content size (ZSTD_getFrameContentSize, which
        # the C++ test's reader needs); zstd given stdin writes an unsized frame.
        tmp = out + ".tmp.jsonl"
        with open(tmp, "wb") as f:
            f.write(data)
        try:
            subprocess.run(["zstd", "-%d" % level, "-q", "-f", tmp, "-o", out], check=True)
        finally:
            os.remove(tmp)
        back = subprocess.run(["zstd", "-dc", out], stdout=subprocess.PIPE, check=True).stdout
        if back != data:
            sys.exit("make_tokenizer_text: %s does not decompress to the generated bytes" % out)
    else:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "wb") as f:
            f.write(data)


def main():
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="output path (.zst: compressed by the zstd CLI; else plain JSONL); "
                    "default tests/data/tokenizer_text.jsonl.zst, required with --bench-mb")
    ap.add_argument("--bench-mb", type=float, help="write a benchmark text of at least this many MB (10^6 bytes) instead")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help=argparse.SUPPRESS)
    ap.add_argument("--check", action="store_true", help="fail unless the text's SHA-256 is EXPECTED_SHA256 (default text only)")
    ap.add_argument("--quiet", action="store_true", help="no category table")
    args = ap.parse_args()

    if args.bench_mb is not None:
        if not args.out:
            ap.error("--bench-mb needs --out")
        want = int(args.bench_mb * 1e6)
        chunks, total, rounds, lines = [], 0, 0, 0
        while total < want:
            groups = generate(BENCH_SEED_BASE + rounds)
            data = to_jsonl(groups)
            chunks.append(data)
            total += len(data)
            lines += sum(len(l) for _, l in groups)
            rounds += 1
        data = b"".join(chunks)
        write_output(data, args.out, 3)
        print("bench text: %s  rounds=%d lines=%d MB=%.3f sha256=%s" % (args.out, rounds, lines, len(data) / 1e6, hashlib.sha256(data).hexdigest()))
        return

    out = args.out or os.path.join(repo, "tests", "data", "tokenizer_text.jsonl.zst")
    groups = generate(args.seed)
    data = to_jsonl(groups)
    sha = hashlib.sha256(data).hexdigest()
    if args.check and sha != EXPECTED_SHA256:
        sys.exit("make_tokenizer_text: SHA-256 %s differs from EXPECTED_SHA256 %s (generator or Python differs)" % (sha, EXPECTED_SHA256))
    write_output(data, out, 19)
    nlines = sum(len(l) for _, l in groups)
    print("text: %s" % out)
    print("lines=%d MB=%.3f (%d bytes uncompressed) sha256=%s" % (nlines, len(data) / 1e6, len(data), sha))
    if out.endswith(".zst"):
        print("compressed: %d bytes (%.3f MB)" % (os.path.getsize(out), os.path.getsize(out) / 1e6))
    if sha != EXPECTED_SHA256 and args.seed == DEFAULT_SEED:
        print("note: EXPECTED_SHA256 in this script is %s; update it if the generator changed on purpose" % EXPECTED_SHA256)
    if not args.quiet:
        print("%-22s %13s %7s %10s %8s" % ("category", "lines", "count", "bytes", "max_len"))
        first = 1
        for name, lines in groups:
            nbytes = sum(len(json.dumps(s, ensure_ascii=False).encode("utf-8")) + 1 for s in lines)
            print("%-22s %6d-%-6d %7d %10d %8d" % (name, first, first + len(lines) - 1, len(lines), nbytes, max(len(s) for s in lines)))
            first += len(lines)


if __name__ == "__main__":
    main()
