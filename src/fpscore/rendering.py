"""Tables and figures written to files, whole or not at all.

A table is written as <stem>.csv (full precision), <stem>.md and <stem>.tex (numbers
rounded by ``format_number``); a figure as <stem>.png and <stem>.pdf. Every set of
files is written to temporary siblings and moved into place only when all succeeded
(``fpscore.fileio.write_all``). The builders themselves are pure: ``fpscore.tables``
returns DataFrames, ``fpscore.figures`` matplotlib Figures.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from fpscore.fileio import write_all

if TYPE_CHECKING:
    import pandas as pd


def format_number(value) -> str:
    """Numbers for the rendered tables: 2 decimals from 1 up (keeps published values such as
    1634.93 whole), 4 significant digits below (SSIM 0.8991, residuals 1.2e-11), '--' for NaN."""
    import numpy as np

    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "--"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.4g}"


def write_table(table: pd.DataFrame, stem: str | Path, caption: str = "") -> list[Path]:
    """<stem>.csv (full precision), <stem>.md and <stem>.tex (numbers by ``format_number``)."""
    import pandas as pd

    stem = Path(stem)
    paths = [stem.with_suffix(s) for s in (".csv", ".md", ".tex")]
    shown = table.copy()
    numeric = [pd.api.types.is_numeric_dtype(table[c]) and table[c].dtype != bool for c in table.columns]
    for col in shown.columns:
        if shown[col].dtype == bool:  # booleans read better as yes/no
            shown[col] = shown[col].map({True: "yes", False: "no"})
        elif pd.api.types.is_float_dtype(shown[col]):
            shown[col] = shown[col].map(format_number)
        else:
            shown[col] = shown[col].astype(object).where(shown[col].notna(), "--")
    markdown = shown.to_markdown(index=False, disable_numparse=True,
                                 colalign=["right" if n else "left" for n in numeric])
    latex = shown.to_latex(index=False, escape=True, caption=caption or None, label=f"tab:{stem.name}",
                           column_format="".join("r" if n else "l" for n in numeric))
    latex = latex.replace(">", "$>$").replace("<", "$<$")  # bounds such as "> 12.0x" (text-mode > is not >)

    def text(content: str) -> Callable[[str], None]:
        return lambda tmp: Path(tmp).write_text(content + "\n")

    write_all([(paths[0], lambda tmp: table.to_csv(tmp, index=False)), (paths[1], text(markdown)),
               (paths[2], text(latex))])
    return paths


def write_csv(table: pd.DataFrame, path: str | Path) -> Path:
    """One CSV (a metrics row, a score-error table), whole or not at all."""
    write_all([(Path(path), lambda tmp: table.to_csv(tmp, index=False))])
    return Path(path)


def save_figure(fig, png: str | Path) -> list[Path]:
    """<stem>.png and <stem>.pdf of a matplotlib Figure."""
    png = Path(png)
    if png.suffix != ".png":
        raise ValueError(f"--out {png}: expected a .png path (the .pdf is written beside it)")
    pdf = png.with_suffix(".pdf")
    write_all([(png, lambda tmp: fig.savefig(tmp, format="png")), (pdf, lambda tmp: fig.savefig(tmp, format="pdf"))])
    return [png, pdf]
