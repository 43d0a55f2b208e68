"""The paper's claims, each assembled from this run's results for the audit.

Which table, rows and splits back each claim, and the paper's own numbers beside them; the
decision rules (paired tests, Holm, verdicts) are in asnet.report.audit. Tables whose runs
are missing give claims that are not judged, so the audit works on any subset of targets.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from asnet.config import Config
from asnet.report.audit import (
    ALPHA,
    Claim,
    absolute_claim,
    comparative_claim,
    coverage_lines,
    holm,
    paired,
    paired_values,
)
from asnet.report.flops import extra_params_check
from asnet.report.replicates import replicate_predictions
from asnet.report.tables import PAPER_NUMBERS, paper_numbers
from asnet.variants import EXPERIMENTS, LABELS, TABLE2_BACKBONES


def build_claims(cfg: Config) -> list[Claim]:
    """The 10 claims of results/audit.md, judged from the runs `cfg` configures."""
    papers = pd.read_csv(PAPER_NUMBERS)
    # real datasets with too few official test videos: ours are reported, never set against the paper's
    below = coverage_lines(cfg)[1]

    def paper(table: str, dataset: str, row: str, col: str) -> float | None:
        hit = papers[(papers["table"] == table) & (papers["dataset"] == dataset) & (papers["row"] == row)
                     & (papers["column"] == col)]
        return float(hit["value"].iloc[0]) if len(hit) else None

    def gain(table: str, dataset: str, a: tuple[str, str], b: tuple[str, str]) -> float | None:
        pa, pb = paper(table, dataset, *a), paper(table, dataset, *b)
        return pa - pb if pa is not None and pb is not None else None

    def preds(dataset: str, variant: str, splits: tuple[int, ...]) -> pd.DataFrame | None:
        # every configured seed's run, paired by (seed, split, video)
        return replicate_predictions(cfg, dataset, variant, splits)

    def compare(name: str, dataset: str, a: str, b: str, splits: tuple[int, ...], paper_gain: float | None):
        pa, pb = preds(dataset, a, splits), preds(dataset, b, splits)
        if pa is None or pb is None:
            return None
        c = paired(name, pa, pb)
        c.paper_gain = paper_gain if dataset in ("ucf101", "hmdb51") and dataset not in below else None
        return c

    def gains_text(table: str, pairs: list[tuple[tuple[str, str], tuple[str, str]]]) -> str:
        """The paper's A - B over a claim's comparisons, per dataset, from its cells:
        e.g. '+1.2 to +2.6 UCF-101, 0.0 to +3.6 HMDB-51'."""
        out = []
        for d, name in (("ucf101", "UCF-101"), ("hmdb51", "HMDB-51")):
            g = [x for a, b in pairs if (x := gain(table, d, a, b)) is not None]
            if g:
                lo, hi = min(g), max(g)
                out.append(f"{lo:+.1f} {name}" if lo == hi else f"{lo:+.1f} to {hi:+.1f} {name}")
        return ", ".join(out) if out else "no number"

    def pg(text_rows: list[tuple[str, float | None]]) -> str:
        return "; ".join(f"{t} {v:.1f}" for t, v in text_rows if v is not None)

    first = (cfg.splits[0],)
    claims: list[Claim] = []
    # Table 6: absolute numbers, mean of the configured splits.
    c = Claim("1", "Top-1 of the single stream and ASNet (3D ResNeXt-101, 64f, mean of 3 splits)", "Table 6",
              pg([(f"{short} {m}", paper("table6", d, v, "top1_mean3")) for d, short in (("ucf101", "UCF"), ("hmdb51", "HMDB"))
                  for v, m in (("single", "single"), ("asnet", "ASNet"))]))
    rows = [(d.name, v, p, paper("table6", d.name, v, "top1_mean3")) for d in cfg.datasets for v in ("single", "asnet")
            if (p := preds(d.name, v, cfg.splits)) is not None]
    if rows:
        absolute_claim(c, rows, below)
    else:
        c.ours = "not run"
    claims.append(c)

    def add(cid: str, text: str, source: str, paper_text: str, comps: list) -> None:
        claim = Claim(cid, text, source, paper_text)
        comparative_claim(claim, [x for x in comps if x is not None], cfg.report.audit_margin)
        claims.append(claim)

    add("2", "ASNet beats the single stream", "Table 6 (all configured splits)",
        gains_text("table6", [(("asnet", "top1_mean3"), ("single", "top1_mean3"))]),
        [compare(f"{d.name} ASNet vs single", d.name, "asnet", "single", cfg.splits,
                 gain("table6", d.name, ("asnet", "top1_mean3"), ("single", "top1_mean3"))) for d in cfg.datasets])
    add("3", "The gain comes from SPA, not from a second stream: ASNet beats a Siamese network fed centre crops",
        "Tables 1-2 (all configured splits here)",
        gains_text("table2", [(("asnet", "top1_split1_resnext101_16f"), ("siamese_center", "top1_split1_resnext101_16f"))])
        + " (Table 2, ResNeXt-101 16f)",
        [compare(f"{d.name} ASNet vs Siamese-centre", d.name, "asnet", "siamese_center", cfg.splits,
                 gain("table2", d.name, ("asnet", "top1_split1_resnext101_16f"),
                      ("siamese_center", "top1_split1_resnext101_16f")))
         for d in cfg.datasets if "siamese_center" in cfg.variants])
    add("4", "SPA's patch beats every other saliency-stream input (random, corner, multi-scale, full frame, "
        "fixed corners)", "Table 1 (split 1)",
        gains_text("table1", [(("asnet", "top1_split1"), (v, "top1_split1")) for v, _, _ in EXPERIMENTS["table1"]
                              if v.startswith("siamese_") and v != "siamese_center"]),
        [compare(f"{d.name} ASNet vs {LABELS[v]}", d.name, "asnet", v, first,
                 gain("table1", d.name, ("asnet", "top1_split1"), (v, "top1_split1")))
         for d in cfg.datasets for v, _, _ in EXPERIMENTS["table1"] if v.startswith("siamese_") and v != "siamese_center"])
    add("5", "ASNet beats the single stream with every backbone", "Table 2 (split 1)",
        gains_text("table2", [(("asnet", TABLE2_BACKBONES[k][1]), ("single", TABLE2_BACKBONES[k][1]))
                              for k in TABLE2_BACKBONES]),
        [compare(f"{d.name} {TABLE2_BACKBONES[k][0]}", d.name, f"{k}_asnet", f"{k}_single", first,
                 gain("table2", d.name, ("asnet", TABLE2_BACKBONES[k][1]), ("single", TABLE2_BACKBONES[k][1])))
         for d in cfg.datasets for k in cfg.report.table2_backbones])
    add("6", "Concatenation is the best way to fuse the two streams", "Table 3 (split 1)",
        gains_text("table3", [(("asnet", "top1_split1"), (v, "top1_split1")) for v, _, _ in EXPERIMENTS["table3"]
                              if v.startswith("asnet_fusion")]),
        [compare(f"{d.name} concat vs {LABELS[v]}", d.name, "asnet", v, first,
                 gain("table3", d.name, ("asnet", "top1_split1"), (v, "top1_split1")))
         for d in cfg.datasets for v, _, _ in EXPERIMENTS["table3"] if v.startswith("asnet_fusion")])
    add("7", "3 actions with T = 10 SPA training steps is the best setting", "Table 4 (split 1)",
        gains_text("table4", [(("asnet_3actions", "top1_split1_steps10"), (row, col)) for v, row, col in EXPERIMENTS["table4"]
                              if v != "asnet_3actions_steps10"]),
        [compare(f"{d.name} 3 actions T=10 vs {LABELS[v]}", d.name, "asnet", v, first,
                 gain("table4", d.name, ("asnet_3actions", "top1_split1_steps10"), (row, col)))
         for d in cfg.datasets for v, row, col in EXPERIMENTS["table4"] if v != "asnet_3actions_steps10"])
    # Table 5: same SVM protocol on W_a vs W_s features, paired on the test videos.
    t5 = Path("results/table5_predictions.csv")
    comps = []
    if t5.exists():
        p5, d0 = pd.read_csv(t5), cfg.datasets[0].name
        p5t = paper_numbers("table5")
        for inp, name in (("xc", "X_c"), ("xs", "X_s"), ("xc_xs", "X_c + X_s")):
            a = p5[(p5["weights"] == "asnet") & (p5["input"] == inp)].set_index("video")
            b = p5[(p5["weights"] == "single") & (p5["input"] == inp)].set_index("video")
            comp = paired(f"{d0} SVM on {name}: W_a vs W_s", a, b)
            va = p5t[(p5t["row"] == "asnet") & (p5t["column"] == f"top1_split1_{inp}")]["value"]
            vs = p5t[(p5t["row"] == "single") & (p5t["column"] == f"top1_split1_{inp}")]["value"]
            comp.paper_gain = float(va.iloc[0] - vs.iloc[0]) if d0 == "hmdb51" and len(va) and len(vs) else None
            comps.append(comp)
    add("8", "ASNet's weights W_a give better frozen features than the single stream's W_s, for every input",
        "Table 5 (linear SVM)",
        gains_text("table5", [(("asnet", f"top1_split1_{i}"), ("single", f"top1_split1_{i}")) for i in ("xc", "xs", "xc_xs")]),
        comps)
    # Parameters: recomputed for the paper's backbone, and for the configured one.
    chk = extra_params_check()
    mine = extra_params_check(cfg)
    c = Claim("9", "ASNet adds < 1% parameters to its backbone", "Sec. 4.4 / Table 6",
              f"0.475 M over 48.34 M ({100 * chk['paper_extra_fraction']:.2f}%)")
    c.ours = (f"paper preset (ResNeXt-101, SPA hidden {chk['spa_hidden']}): +{chk['extra_params'] / 1e6:.3f} M = "
              f"{100 * chk['extra_fraction']:.2f}% of {chk['single_total_params'] / 1e6:.2f} M; this run's model: "
              f"{100 * mine['extra_fraction']:.2f}%")
    c.verdict = "reproduces" if chk["extra_fraction"] < 0.01 else "does not reproduce"
    c.details = [f"ResNeXt-101 with Kinetics' 400-way fc has {chk['backbone_kinetics400_params']:,} parameters "
                 f"(paper: 48.34 M); SPA with hidden {chk['spa_hidden']} on a {chk['state_dim']}-dim pooled state has "
                 f"{chk['spa_params']:,} ({100 * chk['spa_params'] / chk['single_total_params']:.2f}%: the paper's "
                 f"0.475 M is SPA alone); the concatenation classifier (2D x C instead of D x C weights) adds "
                 f"{chk['extra_head_params']:,}, which the paper does not count.",
                 "Counted by building the models (asnet.report.flops.extra_params_check)."]
    claims.append(c)
    # SPA localisation (Figure 5): only judgeable where ground-truth boxes exist.
    comps = []
    for d in cfg.datasets:
        p = preds(d.name, "asnet", cfg.splits)
        if p is None or "iou_spa" not in p.columns:
            continue
        # best_constant: the best box prior of the training clips, the ceiling of a fixed box.
        for other in (o for o in ("center", "random", "best_constant") if f"iou_{o}" in p.columns):
            comps.append(paired_values(f"{d.name} SPA box vs {other} box (IoU with the actor)",
                                       p["iou_spa"], p[f"iou_{other}"]))
    c = Claim("10", "SPA's box covers the actor (the salient region)", "Figure 5 (qualitative)",
              "shown on example frames; no number")
    if comps:
        holm(comps)
        ok = all(cc.diff > 0 and cc.p_adj < ALPHA for cc in comps)
        bad = any(cc.diff <= 0 for cc in comps)
        c.verdict = "reproduces" if ok else ("does not reproduce" if bad else "cannot judge")
        c.ours = "; ".join(f"{cc.name}: {cc.acc_a:.1f} vs {cc.acc_b:.1f}" for cc in comps)
        c.details = [f"{cc.name}: mean IoU x100 {cc.acc_a:.1f} vs {cc.acc_b:.1f}, 95% CI of the difference "
                     f"{cc.diff_lo:+.1f} to {cc.diff_hi:+.1f}, sign-test p {cc.p:.3g} (Holm {cc.p_adj:.3g})" for cc in comps]
    else:
        c.ours = "no ground-truth boxes (real datasets): see results/figure5.png"
    claims.append(c)
    for claim in claims:
        for name, why in below.items():
            if any(name in d for d in claim.details) and not any(why in d for d in claim.details):
                claim.details.append(f"{name}: the paper's numbers are {why}")
    return claims
