"""Schema and content checks of workflow/paper/paper_numbers.csv (the paper's numbers)."""

from __future__ import annotations

import pandas as pd
import pytest

from asnet.report.tables import PAPER_NUMBERS, paper_numbers

COLUMNS = ["table", "dataset", "row", "column", "value", "certain", "provenance"]


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return pd.read_csv(PAPER_NUMBERS)


def _value(df: pd.DataFrame, table: str, dataset: str, row: str, column: str) -> float:
    hit = df[(df["table"] == table) & (df["dataset"] == dataset) & (df["row"] == row) & (df["column"] == column)]
    assert len(hit) == 1, f"expected one {table}/{dataset}/{row}/{column}, got {len(hit)}"
    return float(hit["value"].iloc[0])


def test_schema(df: pd.DataFrame) -> None:
    assert list(df.columns) == COLUMNS
    assert df["value"].dtype.kind == "f" and df["value"].notna().all()
    assert df["certain"].dtype == bool
    assert df["provenance"].str.len().gt(10).all()
    assert set(df["table"]) == {f"table{i}" for i in range(1, 7)}
    assert set(df["dataset"]) <= {"ucf101", "hmdb51", "all"}
    assert not df.duplicated(["table", "dataset", "row", "column"]).any()
    assert df["row"].str.fullmatch(r"[a-z0-9_]+").all() and df["column"].str.fullmatch(r"[a-z0-9_]+").all()


def test_accuracies_are_percentages(df: pd.DataFrame) -> None:
    acc = df[df["column"].str.startswith("top1")]
    assert len(acc) == len(df[df["dataset"] != "all"])  # every per-dataset number is an accuracy
    assert acc["value"].between(0, 100).all()
    # The paper's top-1 numbers are all far above chance on these datasets.
    assert acc["value"].min() > 50


def test_notes_table6_values(df: pd.DataFrame) -> None:
    assert _value(df, "table6", "ucf101", "single", "top1_mean3") == 95.1
    assert _value(df, "table6", "hmdb51", "single", "top1_mean3") == 73.4
    assert _value(df, "table6", "ucf101", "asnet", "top1_mean3") == 96.8
    assert _value(df, "table6", "hmdb51", "asnet", "top1_mean3") == 76.4
    certain = df[(df["table"] == "table6") & df["row"].isin(["single", "asnet"]) & (df["dataset"] != "all")]
    assert certain["certain"].all()
    assert _value(df, "table6", "ucf101", "i3d", "top1_mean3") == 95.4
    assert _value(df, "table6", "hmdb51", "r2plus1d", "top1_mean3") == 74.5
    # NOTES item 4: S3D on UCF-101 is contradicted by the text, so it must not be marked certain.
    s3d = df[(df["table"] == "table6") & (df["dataset"] == "ucf101") & (df["row"] == "s3d")]
    assert not s3d["certain"].any()


def test_notes_table5_values(df: pd.DataFrame) -> None:
    cols = ["top1_split1_xc", "top1_split1_xs", "top1_split1_xc_xs"]
    assert [_value(df, "table5", "hmdb51", "single", c) for c in cols] == [73.9, 74.5, 75.5]
    assert [_value(df, "table5", "hmdb51", "asnet", c) for c in cols] == [75.0, 75.8, 76.6]


def test_cross_table_consistency(df: pd.DataFrame) -> None:
    # The paper's ResNeXt-101 16f split-1 ASNet and baseline appear in Tables 1-4 alike.
    for ds, single, asnet in (("ucf101", 91.7, 93.7), ("hmdb51", 66.7, 69.2)):
        assert _value(df, "table1", ds, "single", "top1_split1") == single
        assert _value(df, "table2", ds, "single", "top1_split1_resnext101_16f") == single
        assert _value(df, "table3", ds, "single", "top1_split1") == single
        assert _value(df, "table1", ds, "asnet", "top1_split1") == asnet
        assert _value(df, "table2", ds, "asnet", "top1_split1_resnext101_16f") == asnet
        assert _value(df, "table3", ds, "asnet", "top1_split1") == asnet
        assert _value(df, "table4", ds, "asnet_3actions", "top1_split1_steps10") == asnet


def test_table6_lookup_by_variant_is_unambiguous() -> None:
    # tables.table6_frame takes the first (dataset, row) hit of table6: it must be the accuracy.
    t6 = paper_numbers("table6")
    for ds in ("ucf101", "hmdb51"):
        for row in ("single", "asnet"):
            hit = t6[(t6["dataset"] == ds) & (t6["row"] == row)]
            assert list(hit["column"]) == ["top1_mean3"]
