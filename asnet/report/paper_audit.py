"""results/paper_audit.md: the paper's own numbers, audited without data or runs.

Two questions are answered from workflow/paper/*.csv alone:

1. Could the paper's test sets decide its comparative claims? A difference of two
   accuracies on the same n test videos is significant (exact McNemar, asnet.report.power)
   only when enough videos are discordant. In the best case every discordant video goes
   one way; a typical case is the discordance two models with independent errors would
   have. Related models disagree less, so the real threshold lies between the two.
   Printed accuracies are rounded to 0.1 point, so the true difference of two cells can
   exceed the printed one by up to 0.1 point: a claim is only called not supportable when
   even that extreme falls short.
2. Does the paper agree with itself? Cells declared the same experiment
   (same_experiment.csv) must carry the same value, and each number the text quotes
   (text_claims.csv) must match the cells it names.

Every number of the report is computed here from those files; the report's text holds none.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import pandas as pd

from asnet.config import REPO_ROOT
from asnet.disk import write_text_atomic
from asnet.report.audit import ALPHA
from asnet.report.power import (
    best_case_min_diff,
    independent_discordance,
    min_diff_at_rate,
    min_discordant,
)
from asnet.variants import TABLE2_BACKBONES

PAPER_DIR = REPO_ROOT / "workflow" / "paper"
STEP = Fraction(1, 10)  # the paper prints accuracies to 0.1 point
DATASETS = {"ucf101": "UCF-101", "hmdb51": "HMDB-51"}

SUPPORTABLE = "supportable"
IF_CORRELATED = "supportable only if the two models rarely disagree"
NOT_AS_PRINTED = "not supportable as printed"
NOT_SUPPORTABLE = "not supportable"
VERDICT_ORDER = (NOT_SUPPORTABLE, NOT_AS_PRINTED, IF_CORRELATED, SUPPORTABLE)  # weakest first
CONSISTENT = "consistent"
WITHIN_ROUNDING = "consistent within rounding"
INCONSISTENT = "inconsistent"

Key = tuple[str, str, str, str]  # (table, dataset, row, column) of paper_numbers.csv


@dataclass(frozen=True)
class Cell:
    """One number of paper_numbers.csv."""

    table: str
    dataset: str
    row: str
    column: str
    value: float
    certain: bool
    provenance: str

    @property
    def key(self) -> Key:
        return (self.table, self.dataset, self.row, self.column)

    @property
    def label(self) -> str:
        """How the paper names the cell: table, printed row name, and the column's setting."""
        return f"{_table_name(self.table)} {_row_label(self)}" + ("" if self.certain else " (uncertain reading)")


@dataclass
class ClaimFinding:
    """One comparison of a comparative claim, judged by what its test set could decide."""

    id: str
    claim_id: str
    claim: str
    citation: str
    dataset: str
    a: str
    b: str
    value_a: float
    value_b: float
    diff: float
    test_set: str
    n: int
    net_videos_printed: float  # diff * n / 100: videos A wins net, as printed
    net_videos_max: int  # the most net videos both cells' rounding allows
    best_case_min_diff: float  # points: min_discordant / n
    discordance_rate: float  # fraction, as if the models' errors were independent
    min_diff_at_rate: float  # points significant at that discordance
    verdict: str
    caveat: str = ""


@dataclass
class ConsistencyFinding:
    """One check of the paper against itself: stated numbers against the cells they name."""

    id: str
    kind: str  # same experiment | text vs table | arithmetic | text pins an uncertain cell
    citation: str
    statement: str
    stated: str
    computed: str
    verdict: str
    note: str = ""


@dataclass
class PaperAudit:
    """Everything results/paper_audit.{md,csv} shows."""

    claims: list[ClaimFinding]
    consistency: list[ConsistencyFinding]
    min_discordant: int
    alpha: float
    test_sets: dict[str, int] = field(default_factory=dict)  # test-set name -> videos
    sources: list[str] = field(default_factory=list)


def _table_name(table: str) -> str:
    return f"Table {table.removeprefix('table')}"


_ROW_NAMES = {"single": "single stream", "asnet": "ASNet", "siamese_center": "Siamese-centre"}


def _row_label(c: Cell) -> str:
    if c.table == "table2":
        backbone = next((label for label, col, _ in TABLE2_BACKBONES.values() if col == c.column), c.column)
        return f"{backbone} {_ROW_NAMES.get(c.row, c.row)}"
    if c.table == "table4":
        actions = c.row.removeprefix("asnet_").removesuffix("actions")
        return f"{actions} actions, T = {c.column.rsplit('steps', 1)[1]}"
    if c.table == "table5":
        inputs = {"xc": "X_c", "xs": "X_s", "xc_xs": "X_c + X_s"}[c.column.removeprefix("top1_split1_")]
        return f"{'W_a' if c.row == 'asnet' else 'W_s'}, {inputs}"
    printed = re.search(r"'([^']+)'", c.provenance)  # the row as the paper prints it
    return f"'{printed.group(1)}'" if printed else _ROW_NAMES.get(c.row, c.row)


def _read(paper_dir: Path, name: str, columns: list[str]) -> pd.DataFrame:
    path = paper_dir / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; the paper audit reads {name} from --paper-dir "
                                f"(default {PAPER_DIR})")
    df = pd.read_csv(path, keep_default_na=False)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; its header must hold {', '.join(columns)}")
    return df


def load_cells(paper_dir: Path = PAPER_DIR) -> dict[Key, Cell]:
    """paper_numbers.csv as cells by (table, dataset, row, column)."""
    df = _read(paper_dir, "paper_numbers.csv", ["table", "dataset", "row", "column", "value", "certain", "provenance"])
    cells: dict[Key, Cell] = {}
    for i, r in df.iterrows():
        try:
            value = float(r["value"])
        except ValueError:
            raise ValueError(f"{paper_dir / 'paper_numbers.csv'} line {i + 2}: value {r['value']!r} is not a number") from None
        cell = Cell(r["table"], r["dataset"], r["row"], r["column"], value,
                    str(r["certain"]).strip().lower() == "true", r["provenance"])
        cells[cell.key] = cell
    return cells


def load_test_sets(paper_dir: Path = PAPER_DIR) -> dict[tuple[str, int], int]:
    """test_sets.csv: official test videos per (dataset, split)."""
    df = _read(paper_dir, "test_sets.csv", ["dataset", "split", "test_videos", "provenance"])
    return {(r["dataset"], int(r["split"])): int(r["test_videos"]) for _, r in df.iterrows()}


def _cell(cells: dict[Key, Cell], key: Key, where: str) -> Cell:
    if key not in cells:
        raise ValueError(f"{where}: cell {'/'.join(key)} is not in paper_numbers.csv; name a "
                         "table/dataset/row/column that is there")
    return cells[key]


# --- 1. comparative claims -------------------------------------------------------------

@dataclass(frozen=True)
class _Claim:
    id: str
    claim: str
    citation: str
    pairs: list[tuple[Key, Key]]


def _claims(cells: dict[Key, Cell]) -> list[_Claim]:
    """The paper's comparative claims as pairs of cells (A claimed above B), drawn from the
    cells present: the claims of asnet.report.claims plus the text's Sec. 4.2.2 / 4.3.1 / 4.4 ones."""

    def rows(table: str, dataset: str, column: str) -> list[str]:
        return [k[2] for k in cells if k[0] == table and k[1] == dataset and k[3] == column]

    ds = ("ucf101", "hmdb51")
    t2cols = [col for _, col, _ in TABLE2_BACKBONES.values()]
    t4 = [(k[2], k[3]) for k in cells if k[0] == "table4" and k[1] == "ucf101"]
    out = [
        _Claim("C1", "ASNet beats the single stream (3D ResNeXt-101, 64f, mean of 3 splits)", "Sec. 4.4, Table 6",
               [(("table6", d, "asnet", "top1_mean3"), ("table6", d, "single", "top1_mean3")) for d in ds]),
        # the Center row of the fixed-location group repeats Center-cropping (same_experiment.csv)
        _Claim("C2", "SPA's patch beats every other saliency-stream input", "Sec. 4.2.1, Table 1",
               [(("table1", d, "asnet", "top1_split1"), ("table1", d, r, "top1_split1")) for d in ds
                for r in rows("table1", d, "top1_split1") if r not in ("asnet", "single", "siamese_center_fixed")]),
        _Claim("C3", "ASNet beats the single stream with every backbone", "Sec. 4.2.2, Table 2",
               [(("table2", d, "asnet", c), ("table2", d, "single", c)) for d in ds for c in t2cols]),
        _Claim("C4", "ASNet beats the Siamese network fed centre crops with every backbone", "Sec. 4.2.2, Table 2",
               [(("table2", d, "asnet", c), ("table2", d, "siamese_center", c)) for d in ds for c in t2cols]),
        _Claim("C5", "The Siamese network fed centre crops beats the single stream with every backbone",
               "Sec. 4.2.2, Table 2",
               [(("table2", d, "siamese_center", c), ("table2", d, "single", c)) for d in ds for c in t2cols]),
        _Claim("C6", "Concatenation is the best way to fuse the two streams", "Sec. 4.2.3, Table 3",
               [(("table3", d, "asnet", "top1_split1"), ("table3", d, r, "top1_split1")) for d in ds
                for r in rows("table3", d, "top1_split1") if r.startswith("asnet_fusion")]),
        _Claim("C7", "3 actions with T = 10 SPA training steps is the best setting", "Sec. 4.2.4, Table 4",
               [(("table4", d, "asnet_3actions", "top1_split1_steps10"), ("table4", d, r, c)) for d in ds
                for r, c in t4 if (r, c) != ("asnet_3actions", "top1_split1_steps10")]),
        _Claim("C8", "ASNet's weights W_a give better frozen features than the single stream's W_s, for every input",
               "Sec. 4.3.1, Table 5",
               [(("table5", "hmdb51", "asnet", c), ("table5", "hmdb51", "single", c))
                for c in ("top1_split1_xc", "top1_split1_xs", "top1_split1_xc_xs")]),
        _Claim("C9", "SPA's crop X_s gives better frozen features than the centre crop X_c, with either weights",
               "Sec. 4.3.1, Table 5",
               [(("table5", "hmdb51", w, "top1_split1_xs"), ("table5", "hmdb51", w, "top1_split1_xc"))
                for w in ("single", "asnet")]),
        _Claim("C10", "ASNet beats I3D, R(2+1)D and S3D on HMDB-51 (other papers' models, same splits)",
               "Sec. 4.4, Table 6",
               [(("table6", "hmdb51", "asnet", "top1_mean3"), ("table6", "hmdb51", m, "top1_mean3"))
                for m in ("i3d", "r2plus1d", "s3d")]),
    ]
    return [c for c in out if c.pairs]


def _test_set(column: str, dataset: str, test_sets: dict[tuple[str, int], int]) -> tuple[str, int, bool, str]:
    """(name, videos, pooled, caveat) of the test set a column's numbers were measured on."""
    split = re.search(r"split(\d)", column)
    splits = [int(split.group(1))] if split else sorted(s for d, s in test_sets if d == dataset)
    missing = [s for s in splits if (dataset, s) not in test_sets]
    if missing or not splits:
        raise ValueError(f"test_sets.csv has no row for {dataset} split(s) {missing or 'any'}; add them")
    n = sum(test_sets[(dataset, s)] for s in splits)
    name = f"{DATASETS.get(dataset, dataset)} split {splits[0]}" if split else \
        f"{DATASETS.get(dataset, dataset)} splits {'+'.join(map(str, splits))} pooled"
    caveat = ""
    if not split:
        caveat = ("the mean of the splits' accuracies is taken as the pooled accuracy of their test sets summed, "
                  "and the mean's rounding as the difference's")
        if dataset == "hmdb51":
            caveat += ("; HMDB-51's three splits draw their test clips from the same videos, so fewer than "
                       f"{n} distinct videos are behind the pool and the thresholds are optimistic")
    return name, n, not split, caveat


def _net_max(a: float, b: float, n: int, pooled: bool) -> int:
    """The most videos A can win net over B given both printed values (each within half a
    printing step of the truth): exact counts of k/n for one split, continuous for a pool."""
    fa, fb, half = Fraction(str(a)), Fraction(str(b)), STEP / 2
    if pooled:
        return math.floor(n * (fa - fb + STEP) / 100)
    return math.floor(n * (fa + half) / 100) - math.ceil(n * (fb - half) / 100)


def judge_pair(a: Cell, b: Cell, n: int, pooled: bool, alpha: float = ALPHA) -> dict:
    """What n paired test videos could decide about A above B at the printed accuracies."""
    diff = round(a.value - b.value, 6)
    m0 = min_discordant(alpha)
    net_max = _net_max(a.value, b.value, n, pooled)
    best = best_case_min_diff(n, alpha)
    rate = independent_discordance(a.value / 100, b.value / 100)
    at_rate = min_diff_at_rate(n, rate, alpha)
    if net_max < m0:
        verdict = NOT_SUPPORTABLE
    elif diff < best - 1e-9:
        verdict = NOT_AS_PRINTED
    elif diff >= at_rate - 1e-9:
        verdict = SUPPORTABLE
    else:
        verdict = IF_CORRELATED
    return {"diff": diff, "net_videos_printed": n * diff / 100, "net_videos_max": net_max, "best_case_min_diff": best,
            "discordance_rate": rate, "min_diff_at_rate": at_rate, "verdict": verdict}


def claim_findings(cells: dict[Key, Cell], test_sets: dict[tuple[str, int], int]) -> list[ClaimFinding]:
    """Every comparison of every comparative claim, judged by its own test set."""
    out = []
    for claim in _claims(cells):
        for i, (ka, kb) in enumerate(claim.pairs, 1):
            a, b = _cell(cells, ka, f"claim {claim.id}"), _cell(cells, kb, f"claim {claim.id}")
            name, n, pooled, caveat = _test_set(a.column, a.dataset, test_sets)
            out.append(ClaimFinding(f"{claim.id}.{i}", claim.id, claim.claim, claim.citation, a.dataset, a.label,
                                    b.label, a.value, b.value, test_set=name, n=n, caveat=caveat,
                                    **judge_pair(a, b, n, pooled)))
    return out


def claim_verdict(findings: list[ClaimFinding]) -> str:
    """A claim holds only as far as its weakest comparison."""
    return min((f.verdict for f in findings), key=VERDICT_ORDER.index)


# --- 2. internal consistency -----------------------------------------------------------

def same_experiment_findings(cells: dict[Key, Cell], paper_dir: Path,
                             test_sets: dict[tuple[str, int], int]) -> list[ConsistencyFinding]:
    """One finding per (group, dataset) of same_experiment.csv: do its cells agree?"""
    df = _read(paper_dir, "same_experiment.csv", ["group", "table", "dataset", "row", "column", "reason"])
    groups: dict[tuple[str, str], list[tuple[Cell, str]]] = defaultdict(list)
    for i, r in df.iterrows():
        where = f"{paper_dir / 'same_experiment.csv'} line {i + 2}"
        groups[(r["group"], r["dataset"])].append(
            (_cell(cells, (r["table"], r["dataset"], r["row"], r["column"]), where), r["reason"]))
    out = []
    for (group, dataset), members in groups.items():
        values = [c.value for c, _ in members]
        spread = round(max(values) - min(values), 6)
        name, n, _, _ = _test_set(members[0][0].column, dataset, test_sets)
        tables = sorted({_table_name(c.table) for c, _ in members})
        out.append(ConsistencyFinding(
            f"S{len(out) + 1}", "same experiment", ", ".join(tables),
            f"{DATASETS.get(dataset, dataset)}, the same experiment: " + "; ".join(why for _, why in members),
            " / ".join(f"{c.label} {c.value:.1f}" for c, _ in members),
            f"spread {spread:.1f} points" + (f" = {n * spread / 100:.1f} of the {n} videos of {name}" if spread else ""),
            CONSISTENT if spread == 0 else INCONSISTENT, group))
    return out


_RELATIONS = {"=": None, ">": lambda x, q: x > q, "<": lambda x, q: x < q, ">=": lambda x, q: x >= q,
              "<=": lambda x, q: x <= q}


def _operand(text: str, cells: dict[Key, Cell], where: str) -> tuple[float, Cell | None]:
    parts = text.split("/")
    if len(parts) == 4:
        c = _cell(cells, tuple(parts), where)  # type: ignore[arg-type]
        return c.value, c
    try:
        return float(text), None
    except ValueError:
        raise ValueError(f"{where}: operand {text!r} is neither table/dataset/row/column nor a number") from None


def text_findings(cells: dict[Key, Cell], paper_dir: Path) -> list[ConsistencyFinding]:
    """Each statement of text_claims.csv against the cells it names, and, for cells whose
    reading is uncertain, whether the text's statements pin them to one value."""
    path = paper_dir / "text_claims.csv"
    df = _read(paper_dir, "text_claims.csv", ["id", "section", "page", "quote", "kind", "a", "b", "relation", "quoted", "note"])
    out: list[ConsistencyFinding] = []
    implied: dict[Key, list[tuple[float, str]]] = defaultdict(list)
    for i, r in df.iterrows():
        where = f"{path} line {i + 2} ({r['id']})"
        if r["relation"] not in _RELATIONS:
            raise ValueError(f"{where}: relation {r['relation']!r} is not one of {', '.join(_RELATIONS)}")
        quoted = float(r["quoted"])
        va, ca = _operand(r["a"], cells, where)
        vb, cb = (_operand(r["b"], cells, where) if r["b"] else (None, None))
        if r["kind"] == "value":
            computed, what = va, ca.label if ca else r["a"]
        elif r["kind"] == "difference" and vb is not None:
            computed, what = va - vb, f"{ca.label if ca else va} - {cb.label if cb else vb}"
        elif r["kind"] == "percent_of" and vb:
            computed, what = 100 * va / vb, f"100 x {va:g} / {vb:g}"
        else:
            raise ValueError(f"{where}: kind {r['kind']!r} needs a (value) or a and b (difference, percent_of)")
        computed = round(computed, 6)
        if r["relation"] == "=":
            gap = abs(computed - quoted)
            verdict = CONSISTENT if gap < float(STEP) / 2 else WITHIN_ROUNDING if gap <= float(STEP) + 1e-9 else INCONSISTENT
            # what the quote says a cell of uncertain reading should be, given the other operand
            if r["kind"] == "value" and ca and not ca.certain:
                implied[ca.key].append((quoted, r["id"]))
            elif r["kind"] == "difference" and ca and cb:
                if not ca.certain and cb.certain:
                    implied[ca.key].append((round(vb + quoted, 6), r["id"]))
                elif not cb.certain and ca.certain:
                    implied[cb.key].append((round(va - quoted, 6), r["id"]))
        else:
            verdict = CONSISTENT if _RELATIONS[r["relation"]](computed, quoted) else INCONSISTENT
        section = f"Sec. {r['section']}" + (f", p. {r['page']}" if r["page"] else "")
        named = [c for c in (ca, cb) if c]
        where = sorted({_table_name(c.table) for c in named}) + sorted({DATASETS.get(c.dataset, c.dataset) for c in named})
        kind = "arithmetic" if r["kind"] == "percent_of" else "text vs table"
        shown = f"{computed:.2f}%" if r["kind"] == "percent_of" else f"{computed:.1f}"
        out.append(ConsistencyFinding(r["id"], kind, ", ".join([section, *where]), f"\"{r['quote']}\"",
                                      f"{what} {r['relation']} {quoted:g}", shown, verdict, r["note"]))
    quotes = dict(zip(df["id"], df["quote"], strict=True))
    for key, values in implied.items():
        cell = cells[key]
        distinct = sorted({v for v, _ in values})
        ok = distinct == [round(cell.value, 6)]
        out.append(ConsistencyFinding(
            f"U{sum(f.kind == 'text pins an uncertain cell' for f in out) + 1}", "text pins an uncertain cell",
            _table_name(cell.table), f"{cell.label}, {DATASETS.get(cell.dataset, cell.dataset)}: what the text's "
            "quoted numbers make it, with the other cell of each quote as the table prints it",
            "; ".join(f"{v:.1f} from {tid} (\"{quotes[tid]}\")" for v, tid in values),
            f"table reading {cell.value:.1f}", CONSISTENT if ok else INCONSISTENT,
            "" if ok else "the text's statements disagree with each other or with the table's reading"))
    return out


# --- the report ------------------------------------------------------------------------

def build_paper_audit(paper_dir: Path = PAPER_DIR) -> PaperAudit:
    """The audit of the paper's numbers in `paper_dir` (paper_numbers.csv, test_sets.csv,
    same_experiment.csv, text_claims.csv): no data, runs or models."""
    paper_dir = Path(paper_dir)
    cells = load_cells(paper_dir)
    test_sets = load_test_sets(paper_dir)
    claims = claim_findings(cells, test_sets)
    consistency = same_experiment_findings(cells, paper_dir, test_sets) + text_findings(cells, paper_dir)
    sets = {f.test_set: f.n for f in claims}
    return PaperAudit(claims, consistency, min_discordant(ALPHA), ALPHA, sets,
                      [str(paper_dir / n) for n in ("paper_numbers.csv", "test_sets.csv", "same_experiment.csv",
                                                    "text_claims.csv")])


def _by_claim(audit: PaperAudit) -> dict[str, list[ClaimFinding]]:
    groups: dict[str, list[ClaimFinding]] = defaultdict(list)
    for f in audit.claims:
        groups[f.claim_id].append(f)
    return groups


def claim_verdicts(audit: PaperAudit) -> dict[str, tuple[str, str]]:
    """{claim id: (claim, verdict of its weakest comparison)}, in the report's order."""
    return {cid: (fs[0].claim, claim_verdict(fs)) for cid, fs in _by_claim(audit).items()}


def summary_lines(audit: PaperAudit) -> list[str]:
    """The audit in a few Markdown lines (for results/audit.md)."""
    groups = _by_claim(audit)
    verdicts = {cid: claim_verdict(fs) for cid, fs in groups.items()}
    cmp_counts = pd.Series([f.verdict for f in audit.claims]).value_counts()
    bad = [f for f in audit.consistency if f.verdict == INCONSISTENT]
    kinds = pd.Series([f.kind for f in bad]).value_counts() if bad else pd.Series(dtype=int)
    claim_text = ", ".join(f"{sum(v == x for v in verdicts.values())} {x}" for x in reversed(VERDICT_ORDER))
    return [
        f"- Of the paper's {len(groups)} comparative claims ({len(audit.claims)} comparisons), judged by what their own "
        f"test sets could decide (exact McNemar, p < {audit.alpha:g}; a claim is as strong as its weakest "
        f"comparison): {claim_text}.",
        "- Comparisons: " + ", ".join(f"{int(cmp_counts.get(x, 0))} {x}" for x in reversed(VERDICT_ORDER)) + ".",
        f"- Internal consistency: {len(bad)} of {len(audit.consistency)} checks inconsistent"
        + (" (" + ", ".join(f"{int(n)} {k}" for k, n in kinds.items()) + "): "
           + "; ".join(f"{f.id} ({f.citation})" for f in bad) if bad else "") + ".",
    ]


def _pts(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.2f}"


def _markdown(audit: PaperAudit) -> str:
    m0, alpha = audit.min_discordant, audit.alpha
    groups = _by_claim(audit)
    lines = ["# The paper's own numbers, audited without data", "",
             "Computed by `asnet paper-audit` (asnet/report/paper_audit.py) from " + ", ".join(
                 f"`{Path(s).relative_to(REPO_ROOT) if Path(s).is_relative_to(REPO_ROOT) else s}`" for s in audit.sources)
             + "; no dataset, run or model is involved.", "", "## Summary", "", *summary_lines(audit), "",
             "## 1. Comparative claims: could the paper's own test sets support them?", "",
             f"An exact McNemar test on the paired test videos reaches p < {alpha:g} only with at least {m0} "
             "discordant videos all going one way, so on n videos no difference below "
             f"{m0} / n can be significant (*best case*). Two models with independent errors at the printed "
             "accuracies a, b disagree on a fraction a(1-b) + b(1-a) of the videos (*independent errors*); models "
             "trained alike share errors and disagree less, so the real threshold lies between the two. "
             f"Printed accuracies are rounded to {float(STEP):g} point, so the true difference of two cells can "
             f"exceed the printed one by up to {float(STEP):g}: *net videos, max* is the most videos A can win "
             "net over B within that rounding. Verdicts, weakest first:", "",
             f"- **{NOT_SUPPORTABLE}**: fewer than {m0} net videos even at the rounding extreme;",
             f"- **{NOT_AS_PRINTED}**: the printed difference is below the best case; only the rounding extreme "
             "reaches it;",
             f"- **{IF_CORRELATED}**: above the best case, below the independent-errors threshold;",
             f"- **{SUPPORTABLE}**: at or above the independent-errors threshold.", "",
             "Test sets: " + "; ".join(f"{k}: {v} videos" for k, v in audit.test_sets.items()) + ".", "",
             "| Claim | Comparisons | Verdict (weakest comparison) |", "|---|---|---|"]
    for cid, fs in groups.items():
        lines.append(f"| {cid}. {fs[0].claim} ({fs[0].citation}) | {len(fs)} | **{claim_verdict(fs)}** |")
    for cid, fs in groups.items():
        lines += ["", f"### {cid}. {fs[0].claim} ({fs[0].citation})", "",
                  "| # | Dataset | A | B | A - B | Test set (n) | Net videos, printed / max | Best case | "
                  "Independent-errors rate | Threshold there | Verdict |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for f in fs:
            lines.append(f"| {f.id} | {DATASETS.get(f.dataset, f.dataset)} | {f.a} {f.value_a:.1f} | {f.b} "
                         f"{f.value_b:.1f} | {f.diff:+.1f} | {f.test_set} ({f.n}) | {f.net_videos_printed:.1f} / "
                         f"{f.net_videos_max} | {_pts(f.best_case_min_diff)} | {f.discordance_rate:.3f} | "
                         f"{_pts(f.min_diff_at_rate)} | {f.verdict} |")
        for caveat in dict.fromkeys(f.caveat for f in fs if f.caveat):
            lines += ["", f"Caveat: {caveat}."]
    lines += ["", "## 2. Internal consistency", "",
              "Cells declared the same experiment (`same_experiment.csv`, each with its reason) must agree; each "
              "number the text quotes (`text_claims.csv`) is checked against the cells it names (a difference "
              f"within {float(STEP):g} point is *{WITHIN_ROUNDING}*); for a cell whose reading of the extracted "
              "table is uncertain, the values the text's quotes imply for it are set side by side."]
    titles = {"same experiment": "The same experiment in two places", "text vs table": "Text against tables",
              "arithmetic": "Arithmetic", "text pins an uncertain cell": "What the text implies for uncertain cells"}
    for kind, title in titles.items():
        fs = [f for f in audit.consistency if f.kind == kind]
        if not fs:
            continue
        n_bad = sum(f.verdict == INCONSISTENT for f in fs)
        lines += ["", f"### {title} ({n_bad} of {len(fs)} inconsistent)", "",
                  "| # | Where | Statement | Stated | Computed | Verdict | Note |", "|---|---|---|---|---|---|---|"]
        for f in fs:
            cells = [f.id, f.citation, f.statement, f.stated, f.computed, f"**{f.verdict}**" if f.verdict == INCONSISTENT
                     else f.verdict, f.note]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def findings_frame(audit: PaperAudit) -> pd.DataFrame:
    """One row per finding (comparisons, then consistency checks), every field as a column."""
    rows = [{"part": "claim", **asdict(f)} for f in audit.claims]
    rows += [{"part": "consistency", **asdict(f)} for f in audit.consistency]
    df = pd.DataFrame(rows)
    for col in ("n", "net_videos_max"):  # blank, not NaN-floats, on the consistency rows
        df[col] = df[col].astype("Int64")
    return df.round(6)


def write_paper_audit(audit: PaperAudit, out_md: Path) -> None:
    """results/paper_audit.md and, beside it, results/paper_audit.csv (one row per finding)."""
    out_md = Path(out_md)
    write_text_atomic(out_md, _markdown(audit))
    write_text_atomic(out_md.with_suffix(".csv"), findings_frame(audit).to_csv(index=False))
