"""What the command line's write_table wrote: Parquet when pyarrow is installed, else CSV."""

from __future__ import annotations


def read_table(folder, name):
    import pandas as pd

    path = folder / f"{name}.parquet"
    return pd.read_parquet(path) if path.exists() else pd.read_csv(folder / f"{name}.csv")
