"""results/spa_cost: what SPA's cheaper rollouts (spa.state_scale, spa.state_stride) cost in
accuracy and save in compute, measured on the configured data.

Not a table of the paper. The paper's SPA embeds every box it tries with a full backbone
forward (T = 10 in training), so ASNet's training step costs ~6x the single stream's in
FLOPs. The `asnet_fast_spa` variant scores boxes on half-size crops of every second frame;
this table puts its accuracy beside the paper's SPA on the same test videos (McNemar), with
the FLOP ratios of both against the single stream.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from asnet.report.tables import interval_and_p, load_predictions, write_csv_and_tex
from asnet.variants import LABELS

REFERENCE = "asnet"  # the paper's SPA: what the cheaper one is compared with


def spa_cost_frame(rows: list[dict]) -> pd.DataFrame:
    """One line per row of `rows` (dicts with dataset, variant, metrics: path of metrics.json,
    cost: asnet.report.flops.model_cost of the variant, single_cost: the single stream's)."""
    out = []
    ref = {r["dataset"]: r["metrics"] for r in rows if r["variant"] == REFERENCE}
    for r in rows:
        m = json.loads(Path(r["metrics"]).read_text())
        c, c1 = r["cost"], r["single_cost"]
        rec = {"Dataset": r["dataset"], "Model": LABELS.get(r["variant"], r["variant"]),
               "SPA sees": c["spa_clip"] or "--", "Top-1": 100 * m["top1"]}
        paired = r["variant"] not in ("single", REFERENCE) and r["dataset"] in ref
        lo, hi, p = interval_and_p(load_predictions(r["metrics"]),
                                   load_predictions(ref[r["dataset"]]) if paired else None)
        rec.update({"CI low": 100 * lo, "CI high": 100 * hi, "McNemar p vs paper's SPA": p,
                    "SPA IoU": 100 * m["iou_spa"] if "iou_spa" in m else float("nan"),
                    "Train FLOPs (x single)": c["gflops_train_step"] / c1["gflops_train_step"],
                    "Test FLOPs (x single)": c["gmacs_per_view"] / c1["gmacs_per_view"],
                    "run": r["run"]})
        out.append(rec)
    return pd.DataFrame(out)


def write_spa_cost(rows: list[dict], out_tex: Path) -> pd.DataFrame:
    """results/spa_cost.{tex,csv} from `rows` (see spa_cost_frame)."""
    wide = spa_cost_frame(rows)
    caption = ("SPA's cost: top-1 (\\%) on the first split with a 95\\% bootstrap interval, McNemar's p of the "
               "cheaper SPA against the paper's on the same videos, SPA's box IoU with the actor (synthetic "
               "data only), and FLOPs per clip relative to the single stream (training: forward + backward "
               "and SPA's episode; test: SPA's rollout included). SPA sees: frames x pixels of its crops.")
    fmt = {"McNemar p vs paper's SPA": "{:.3f}", "Train FLOPs (x single)": "{:.2f}", "Test FLOPs (x single)": "{:.2f}"}
    write_csv_and_tex(wide, wide.drop(columns=["run"]), out_tex, caption, fmt)
    return wide
