"""results/localisation: how well SPA's box covers the actor, against its bounds.

Not a table of the paper. On datasets with ground-truth actor boxes (the synthetic set),
pooled over the configured splits' test videos: the mean IoU with the actor of SPA's box
(`asnet`), of the fixed boxes evaluated beside it (random, centre, and the best constant box
of the training clips: the ceiling of a pure box prior), of SPA trained with the oracle IoU
reward (`asnet_oracle_spa`: the ceiling of the paper's policy and state) and of the box-aware
SPA (`asnet_spatial_spa`, beyond the paper). Each has a 95% bootstrap interval over test
videos; SPA gets a paired sign test against the best fixed box (the fixed column of highest
mean, as ../shared/tools/verdict.py picks it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from asnet.report.stats import bootstrap_mean_ci, sign_test
from asnet.report.tables import write_csv_and_tex

# (label, variant whose predictions.csv holds it, column)
ROWS = (
    ("SPA (paper)", "asnet", "iou_spa"),
    ("Random box", "asnet", "iou_random"),
    ("Centre box", "asnet", "iou_center"),
    ("Best constant box", "asnet", "iou_best_constant"),
    ("SPA, oracle IoU reward", "asnet_oracle_spa", "iou_spa"),
    ("SPA, box-aware state", "asnet_spatial_spa", "iou_spa"),
)
FIXED = {column: label for label, variant, column in ROWS[1:4]}  # the fixed boxes: column -> label


def pooled_predictions(files: list[Path]) -> pd.DataFrame | None:
    """predictions.csv of one (dataset, variant) over its splits, stacked (None if none exists)."""
    frames = [pd.read_csv(f).assign(split=Path(f).parent.parent.name) for f in files if Path(f).exists()]
    return pd.concat(frames, ignore_index=True) if frames else None


def localisation_frame(runs: list[dict]) -> pd.DataFrame:
    """One line per (dataset, ROWS entry) from `runs` (dicts with dataset, variant and
    predictions: the predictions.csv paths of the configured splits)."""
    out = []
    for dataset in dict.fromkeys(r["dataset"] for r in runs):
        preds = {r["variant"]: pooled_predictions(r["predictions"]) for r in runs if r["dataset"] == dataset}
        spa = preds.get("asnet")
        fixed = [c for c in FIXED if spa is not None and c in spa.columns]
        best = max(fixed, key=lambda c: spa[c].mean()) if fixed else None
        for label, variant, column in ROWS:
            p = preds.get(variant)
            rec: dict = {"Dataset": dataset, "Box": label, "Run": variant, "Mean IoU": np.nan, "CI low": np.nan,
                         "CI high": np.nan, "Videos": 0}
            if p is not None and column in p.columns and len(p):
                lo, hi = bootstrap_mean_ci(p[column].to_numpy())
                rec.update({"Mean IoU": float(p[column].mean()), "CI low": lo, "CI high": hi, "Videos": len(p)})
            rec.update({"vs best fixed": "", "Wins": np.nan, "Losses": np.nan, "Sign p": np.nan})
            if variant == "asnet" and column == "iou_spa" and best is not None and "iou_spa" in spa.columns:
                test = sign_test(spa["iou_spa"].to_numpy(), spa[best].to_numpy())
                rec.update({"vs best fixed": FIXED[best],
                            "Wins": test["wins"], "Losses": test["losses"], "Sign p": test["p"]})
            out.append(rec)
    columns = ["Dataset", "Box", "Run", "Mean IoU", "CI low", "CI high", "Videos", "vs best fixed", "Wins", "Losses",
               "Sign p"]
    return pd.DataFrame(out, columns=columns).astype({"Wins": "Int64", "Losses": "Int64"})


def write_localisation(runs: list[dict], out_tex: Path) -> pd.DataFrame:
    """results/localisation.{tex,csv} from `runs` (see localisation_frame)."""
    wide = localisation_frame(runs)
    caption = ("SPA's localisation against its bounds (not in the paper): mean IoU with the actor's box over the "
               "test videos of the configured splits pooled, with a 95\\% bootstrap interval; the sign test pairs "
               "SPA with the best fixed box (random, centre or the best constant box of the training clips) per "
               "video. Oracle reward: SPA trained on the change of IoU with the actor (the ceiling of the paper's "
               "policy and state); box-aware state: beyond the paper.")
    fmt = {c: "{:.3f}" for c in ("Mean IoU", "CI low", "CI high", "Sign p")}
    fmt.update({"Wins": "{:.0f}", "Losses": "{:.0f}"})
    if wide.empty:
        write_csv_and_tex(wide, pd.DataFrame({"Note": ["no dataset with ground-truth actor boxes is configured"]}),
                          out_tex, caption)
    else:
        write_csv_and_tex(wide, wide.drop(columns=["Run"]), out_tex, caption, fmt)
    return wide
