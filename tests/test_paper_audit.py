"""results/paper_audit.{md,csv} (asnet.report.paper_audit): the paper's numbers audited from
workflow/paper/*.csv alone, checked against hand-computed cases and against edits of those files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from asnet.report.paper_audit import (
    CONSISTENT,
    INCONSISTENT,
    NOT_AS_PRINTED,
    NOT_SUPPORTABLE,
    PAPER_DIR,
    SUPPORTABLE,
    PaperAudit,
    build_paper_audit,
    findings_frame,
    load_cells,
    load_test_sets,
    summary_lines,
    write_paper_audit,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def audit() -> PaperAudit:
    return build_paper_audit()


def _claim(audit: PaperAudit, dataset: str, a: str, b: str):
    hits = [f for f in audit.claims if f.dataset == dataset and f.a.startswith(a) and f.b.startswith(b)]
    assert len(hits) == 1, [(f.id, f.a, f.b) for f in hits]
    return hits[0]


def _copy(tmp_path: Path) -> Path:
    d = tmp_path / "paper"
    shutil.copytree(PAPER_DIR, d)
    return d


def test_a_tenth_of_a_point_on_ucf101_split1_is_below_the_best_case(audit: PaperAudit) -> None:
    """Table 4, UCF-101: 3 actions T=10 93.7 vs T=5 93.6 on 3783 videos. 0.1 point is 3.8 videos,
    fewer than the 6 an exact McNemar test needs (2 / 2**6 < 0.05 <= 2 / 2**5). Rounding allows
    93.75 vs 93.55: floor(3546.56) - ceil(3538.997) = 7 videos, so only that extreme reaches 6."""
    assert audit.min_discordant == 6
    f = _claim(audit, "ucf101", "Table 4 3 actions, T = 10", "Table 4 3 actions, T = 5")
    assert (f.n, f.diff) == (3783, pytest.approx(0.1))
    assert f.net_videos_printed == pytest.approx(3.783)
    assert f.net_videos_max == 7
    assert f.best_case_min_diff == pytest.approx(100 * 6 / 3783)
    assert f.verdict == NOT_AS_PRINTED


def test_hmdb51_gains_of_a_fifth_of_a_point_cannot_be_decided_at_all(audit: PaperAudit) -> None:
    """Table 2 ResNet-18, HMDB-51: ASNet 57.5 vs single 57.3 on 1530 videos: at most
    floor(880.515) - ceil(875.925) = 4 net videos even at the rounding extreme: < 6."""
    f = _claim(audit, "hmdb51", "Table 2 ResNet-18 ASNet", "Table 2 ResNet-18 single")
    assert (f.n, f.net_videos_max) == (1530, 4)
    assert f.verdict == NOT_SUPPORTABLE
    tie = _claim(audit, "ucf101", "Table 4 3 actions, T = 10", "Table 4 4 actions, T = 10")
    assert tie.diff == 0 and tie.verdict == NOT_SUPPORTABLE


def test_table6_gain_on_the_pooled_splits_clears_the_independent_errors_threshold(audit: PaperAudit) -> None:
    """Table 6 UCF-101: 96.8 vs 95.1 on 3783 + 3734 + 3696 = 11213 videos. Independent errors
    disagree on .968 * .049 + .951 * .032 = 0.077864 of them; the normal approximation of the
    threshold, 196 * sqrt(0.077864 / 11213) = 0.52 point, is far below 1.7."""
    f = _claim(audit, "ucf101", "Table 6 ASNet", "Table 6 single")
    assert f.n == 11213 and "pooled" in f.test_set
    assert f.discordance_rate == pytest.approx(0.077864)
    assert f.min_diff_at_rate == pytest.approx(0.52, abs=0.02)
    assert f.verdict == SUPPORTABLE
    hmdb = _claim(audit, "hmdb51", "Table 6 ASNet", "Table 6 single")
    assert hmdb.n == 3 * 1530 and "share videos" not in hmdb.caveat and "same videos" in hmdb.caveat


def test_the_known_contradictions_are_found_and_the_garbled_sentence_is_not_one(audit: PaperAudit) -> None:
    by_id = {f.id: f for f in audit.consistency}
    same = [f for f in audit.consistency if f.kind == "same experiment"]
    bad = {f.note for f in same if f.verdict == INCONSISTENT}
    assert bad == {"siamese_center_resnext101_16f"}  # Table 1 centre crop 92.5 / 67.6 vs Table 2 92.1 / 67.0
    assert all(f.verdict == CONSISTENT for f in same if f.note != "siamese_center_resnext101_16f")
    s3d = [f for f in audit.consistency if f.kind == "text pins an uncertain cell" and "S3D" in f.statement]
    assert len(s3d) == 1 and s3d[0].verdict == INCONSISTENT
    assert "96.5 from" in s3d[0].stated and "96.8 from" in s3d[0].stated
    garbled = [f for f in audit.consistency if "garbled" in f.note]
    assert len(garbled) == 2 and all(f.verdict == CONSISTENT for f in garbled)
    arithmetic = [f for f in audit.consistency if f.kind == "arithmetic"]
    assert [(f.computed, f.verdict) for f in arithmetic] == [("0.98%", CONSISTENT)]
    assert all(f.citation.startswith(("Sec.", "Table")) for f in audit.consistency)
    assert all("Table" in f.citation and "Sec." in f.citation for f in audit.claims)
    assert by_id  # ids are unique
    assert len(by_id) == len(audit.consistency)


def test_changing_one_number_makes_a_consistency_finding_appear(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    df = pd.read_csv(d / "paper_numbers.csv")
    hit = (df["table"] == "table2") & (df["dataset"] == "ucf101") & (df["row"] == "single") \
        & (df["column"] == "top1_split1_resnext101_16f")
    assert hit.sum() == 1
    df.loc[hit, "value"] = 91.9
    df.to_csv(d / "paper_numbers.csv", index=False)
    edited = build_paper_audit(d)
    single = [f for f in edited.consistency if f.kind == "same experiment" and f.note == "single_resnext101_16f"]
    ucf = next(f for f in single if f.statement.startswith("UCF-101"))
    assert ucf.verdict == INCONSISTENT and "Table 2 ResNeXt-101 single stream 91.9" in ucf.stated
    assert ucf.computed.startswith("spread 0.2 points = 7.6 of the 3783 videos")
    # the comparison that cell takes part in moved with it
    f = _claim(edited, "ucf101", "Table 2 ResNeXt-101 ASNet", "Table 2 ResNeXt-101 single")
    assert f.diff == pytest.approx(1.8)


def test_the_test_set_sizes_drive_the_verdicts(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    ts = pd.read_csv(d / "test_sets.csv")
    ts.loc[(ts["dataset"] == "hmdb51") & (ts["split"] == 1), "test_videos"] = 3000
    ts.to_csv(d / "test_sets.csv", index=False)
    f = _claim(build_paper_audit(d), "hmdb51", "Table 2 ResNet-18 ASNet", "Table 2 ResNet-18 single")
    assert f.n == 3000 and f.verdict != NOT_SUPPORTABLE


def test_a_text_claim_naming_a_missing_cell_is_one_clear_error(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    text = (d / "text_claims.csv").read_text().replace("table5/hmdb51/asnet/top1_split1_xc,", "table5/hmdb51/asnet/top1_xc,", 1)
    (d / "text_claims.csv").write_text(text)
    with pytest.raises(ValueError, match=r"text_claims\.csv line \d+ \(T\d+\): cell table5/hmdb51/asnet/top1_xc is not"):
        build_paper_audit(d)


def test_cli_writes_the_report_and_one_csv_row_per_finding(tmp_path: Path, audit: PaperAudit) -> None:
    out = tmp_path / "res" / "paper_audit.md"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "asnet.cli", "paper-audit", "--out", str(out)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines() == summary_lines(audit)
    md = out.read_text()
    assert md.startswith("# The paper's own numbers, audited without data") and "## 2. Internal consistency" in md
    csv = pd.read_csv(out.with_suffix(".csv"))
    assert len(csv) == len(audit.claims) + len(audit.consistency) == len(findings_frame(audit))
    assert set(csv["part"]) == {"claim", "consistency"}
    # a missing paper folder: exit 2 and one line naming it
    bad = subprocess.run([sys.executable, "-m", "asnet.cli", "paper-audit", "--out", str(out), "--paper-dir",
                          str(tmp_path / "nowhere")], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "nowhere/paper_numbers.csv: missing" in bad.stderr


def test_write_paper_audit_replaces_the_report_whole(tmp_path: Path, audit: PaperAudit) -> None:
    out = tmp_path / "paper_audit.md"
    out.write_text("old")
    write_paper_audit(audit, out)
    assert out.read_text().startswith("# The paper's own numbers") and out.with_suffix(".csv").exists()
    assert not list(tmp_path.glob("*.tmp"))


def _real_lists_dir() -> Path:
    env = os.environ.get("ASNET_SHARED")
    for base in ([Path(env)] if env else []) + [REPO.parent / "shared"]:
        d = base / "datasets/ucf101/ucfTrainTestlist"
        if d.is_dir():
            return d
    pytest.skip("official UCF-101 split lists not found in ../shared (set ASNET_SHARED)")


def test_ucf101_test_set_sizes_are_the_official_lists_line_counts() -> None:
    d = _real_lists_dir()
    sizes = load_test_sets()
    for split in (1, 2, 3):
        lines = [x for x in (d / f"testlist0{split}.txt").read_text().splitlines() if x.strip()]
        assert sizes[("ucf101", split)] == len(lines) == len(set(lines))


def test_every_claim_cell_is_a_paper_number() -> None:
    cells = load_cells()
    audit = build_paper_audit()
    labels = {c.label for c in cells.values()}
    assert {f.a for f in audit.claims} | {f.b for f in audit.claims} <= labels


def test_every_text_claim_quotes_the_paper_verbatim() -> None:
    """Each quote of text_claims.csv is in the extracted text (whitespace aside)."""
    env = os.environ.get("ASNET_SHARED")
    paper = next((p for p in ([Path(env)] if env else []) + [REPO.parent / "shared"]
                  if (p / "paper/asnet-sensors-2021.txt").is_file()), None)
    if paper is None:
        pytest.skip("the paper's text is not in ../shared/paper (set ASNET_SHARED)")
    text = "".join((paper / "paper/asnet-sensors-2021.txt").read_text().split())
    quotes = pd.read_csv(PAPER_DIR / "text_claims.csv")["quote"]
    assert [q for q in quotes if "".join(q.split()) not in text] == []
