"""Table 5: frozen features + linear SVM.

Weights W_s (the single-stream model's backbone) and W_a (ASNet's backbone) are each
applied to inputs X_c (centre crops), X_s (SPA's crops, from the ASNet run's agent, 2 test
steps) and X_c + X_s (the two feature vectors concatenated). A video's feature is the mean
of its non-overlapping clips' pooled backbone features; a linear SVM (scikit-learn
LinearSVC on standardised features) is fitted on the training videos, with C chosen by
stratified 3-fold cross-validation on the training videos only, and scored on the test
videos. The paper does not give its SVM settings (NOTES item 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from torch.utils.data import DataLoader
from tqdm import tqdm

from asnet.data.clips import VideoClips
from asnet.data.crops import Frames, centre_crop_boxes
from asnet.device import configure_backends, select_runtime, set_threads
from asnet.report.stats import bootstrap_ci
from asnet.spa.rollout import run_episode
from asnet.train.loop import load_trained

C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)
INPUTS = ("xc", "xs", "xc_xs")
CHUNK = 16  # clips per forward: bounds device memory on long videos


@dataclass(frozen=True)
class VideoFeatures:
    """Per-video mean features of the usable videos (``asnet.data.clips.usable_videos``).

    rows: the manifest rows featurised, in manifest order (labels and subsets come from
    these, so features, labels and masks always line up); listed / excluded: the manifest's
    rows and those the frame index excluded; feats: {"single"|"asnet": {"xc"|"xs": (N, D)}};
    device: where the features were computed."""

    rows: pd.DataFrame
    listed: int
    excluded: int
    feats: dict[str, dict[str, np.ndarray]]
    device: str


@torch.no_grad()
def video_features(
    single_path: Path,
    asnet_path: Path,
    manifest: pd.DataFrame,
    frames_dir: Path,
    progress: bool = True,
    device: str = "auto",
    threads: int = 0,
    workers: int = 0,
) -> VideoFeatures:
    """Features of every usable video of `manifest` under W_s and W_a, for X_c and X_s.

    `device` is the config's (auto: CUDA when present); AMP and channels_last follow the
    ASNet run's config, as its evaluation does. `threads`: torch CPU threads (0 = all the
    cores this process may use); `workers`: DataLoader processes decoding videos ahead of
    the models. Each video's clips go to the device in chunks of CHUNK, where they are
    cropped (centre and SPA's boxes) and featurised."""
    set_threads(threads)
    cfg_a = load_trained(asnet_path)[0]
    rt = select_runtime(device, cfg_a.train.amp, cfg_a.train.channels_last)
    # No autotuning: each batch is one video's clips, most of them a new shape.
    configure_backends(rt, cfg_a.train.deterministic, benchmark=False)
    _, _, m_single, _ = load_trained(single_path, rt.device)
    cfg_a, _, m_asnet, agent = load_trained(asnet_path, rt.device)
    if agent is None:
        raise ValueError(f"{asnet_path}: not an ASNet run (no SPA agent); Table 5 needs X_s from SPA")
    if rt.channels_last:
        m_single = m_single.to(memory_format=torch.channels_last_3d)
        m_asnet = m_asnet.to(memory_format=torch.channels_last_3d)
    inp, norm = cfg_a.input, cfg_a.normalisation()
    ds = VideoClips(manifest, frames_dir, inp.clip_len)
    feats: dict[str, dict[str, list[np.ndarray]]] = {w: {"xc": [], "xs": []} for w in ("single", "asnet")}
    # batch_size=None: one item (all clips of one video) at a time, in the manifest's order.
    loader = DataLoader(ds, batch_size=None, num_workers=workers, pin_memory=rt.device.type == "cuda")
    for item in tqdm(loader, total=len(ds), desc="table5 features", disable=not progress):
        clips = item["clips"]  # (N, T, H, W, 3)
        n = clips.shape[0]
        hs, ws = torch.full((n,), int(item["height"])), torch.full((n,), int(item["width"]))
        chunks: dict[str, dict[str, list[torch.Tensor]]] = {w: {"xc": [], "xs": []} for w in ("single", "asnet")}
        for s in range(0, n, CHUNK):
            # The chunk crosses to the device once, as uint8; every crop is cut there.
            frames = Frames.of(clips[s : s + CHUNK], hs[s : s + CHUNK], ws[s : s + CHUNK], rt.device, rt.crop_method)
            episode = run_episode(m_asnet, agent, frames, frames.heights, frames.widths, None, cfg_a.spa, inp,
                                  cfg_a.spa.test_steps, deterministic=True, autocast=rt.autocast,
                                  to_input=rt.to_input, norm=norm)
            x_c = frames.crop(centre_crop_boxes(frames.heights, frames.widths), inp.size, norm)
            x_s = frames.crop(episode.final_boxes, inp.size, norm)
            for name, model in (("single", m_single), ("asnet", m_asnet)):
                with rt.autocast():
                    chunks[name]["xc"].append(model.features(rt.to_input(x_c)).float())
                    chunks[name]["xs"].append(model.features(rt.to_input(x_s)).float())
        for name, d in chunks.items():
            for key, parts in d.items():
                feats[name][key].append(torch.cat(parts).mean(0).cpu().numpy())
    dim = {w: m.feature_dim for w, m in (("single", m_single), ("asnet", m_asnet))}
    out = {w: {k: np.stack(v) if v else np.zeros((0, dim[w]), np.float32) for k, v in d.items()}
           for w, d in feats.items()}
    return VideoFeatures(ds.rows, ds.n_listed, ds.n_excluded, out, str(rt.device))


def fit_svm(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, seed: int = 0) -> dict:
    """Linear SVM with C from 3-fold CV on the training set. -> {"top1", "pred", "C", "cv_score"}"""
    folds = max(2, min(3, int(np.bincount(y_train).min())))
    search = GridSearchCV(
        make_pipeline(StandardScaler(), LinearSVC(dual="auto", max_iter=20000, random_state=seed)),
        {"linearsvc__C": list(C_GRID)},
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
    )
    search.fit(x_train, y_train)
    pred = search.predict(x_test)
    return {
        "top1": float((pred == y_test).mean()),
        "pred": pred,
        "C": float(search.best_params_["linearsvc__C"]),
        "cv_score": float(search.best_score_),
    }


def table5(
    single_path: Path,
    asnet_path: Path,
    manifest_path: Path,
    frames_dir: Path,
    out_tex: Path,
    progress: bool = True,
    device: str = "auto",
    threads: int = 0,
    workers: int = 0,
) -> pd.DataFrame:
    """Fit the six SVMs and write results/table5.{tex,csv} (the paper's HMDB-51 values beside).

    Videos the frame index excludes are left out of training and testing alike (labels and
    the train/test mask come from the same usable rows as the features); the csv counts
    them per subset and the caption names them. `device`, `threads`, `workers`: see
    ``video_features``."""
    from asnet.report.tables import paper_numbers, to_latex

    manifest = pd.read_csv(manifest_path).reset_index(drop=True)
    dataset = Path(manifest_path).parent.parent.name  # data/<dataset>/manifests/split<k>.csv
    vf = video_features(single_path, asnet_path, manifest, frames_dir, progress, device, threads, workers)
    rows, feats = vf.rows, vf.feats
    y = rows["label"].to_numpy()
    train = (rows["subset"] == "train").to_numpy()
    listed_train = int((manifest["subset"] == "train").sum())
    listed_test = int((manifest["subset"] == "test").sum())
    counts = {"Train videos": int(train.sum()), "Test videos": int((~train).sum()), "Excluded": vf.excluded}
    paper = paper_numbers("table5")
    out_rows, preds = [], []
    for weights, label in (("single", "W_s (single stream)"), ("asnet", "W_a (ASNet)")):
        f = feats[weights]
        for inp in INPUTS:
            x = np.concatenate([f["xc"], f["xs"]], axis=1) if inp == "xc_xs" else f[inp]
            res = fit_svm(x[train], y[train], x[~train], y[~train])
            # per-video outcomes, for paired tests (results/audit.md compares W_a with W_s)
            preds.append(pd.DataFrame({"weights": weights, "input": inp, "video": rows.loc[~train, "video"].to_numpy(),
                                       "label": y[~train], "pred": res["pred"],
                                       "correct": (res["pred"] == y[~train]).astype(int)}))
            hit = paper[(paper["row"] == weights) & (paper["column"] == f"top1_split1_{inp}")]
            lo, hi = bootstrap_ci((res["pred"] == y[~train]).astype(int))
            paper_value = float(hit["value"].iloc[0]) if len(hit) else float("nan")
            out_rows.append({
                "Weights": label, "Input": {"xc": "X_c", "xs": "X_s", "xc_xs": "X_c + X_s"}[inp],
                "Top-1": 100 * res["top1"], "CI low": 100 * lo, "CI high": 100 * hi, "C": res["C"],
                "CV top-1": 100 * res["cv_score"], "Paper HMDB-51": paper_value,
                # the paper's Table 5 is HMDB-51 split 1: a difference only means something there
                "Diff": 100 * res["top1"] - paper_value if dataset == "hmdb51" else float("nan"),
                **counts,
            })
    df = pd.DataFrame(out_rows)
    out_tex.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out_tex.with_suffix(".csv"), index=False, float_format="%.4f")
    pd.concat(preds).to_csv(out_tex.with_name(out_tex.stem + "_predictions.csv"), index=False)
    name = dataset.replace("_", r"\_")  # LaTeX
    caption = (f"Table 5 ({name}): frozen features + linear SVM (C by 3-fold CV on "
               "the training videos, standardised features), top-1 (\\%) on the test videos of the first "
               "configured split with a 95\\% bootstrap interval; Diff = ours - the paper's (HMDB-51 only). "
               f"Videos: {len(rows)} of {vf.listed} ({vf.excluded} excluded at frame extraction, see "
               f"bad\\_videos.csv): {counts['Train videos']} of {listed_train} training, "
               f"{counts['Test videos']} of {listed_test} test.")
    out_tex.write_text(to_latex(df.drop(columns=list(counts)), caption, "tab:table5", formats={"C": "{:g}"}))
    return df
