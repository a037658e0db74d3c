"""The eval's chart: pass rates against cost per task, one column of marks per configuration.

Each configuration gets three marks at its cost per task: pass@1, selected@N and any@N; the line from
any@N down to selected@N is the selector loss, the gap no product shows its users. When a configuration's
cost is not known (an external CLI reports none), the x axis is seconds per task instead, and says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UserError


def write_chart(rows: list[dict[str, Any]], path: Path, *, title: str = "") -> Path:
    """Writes the chart of ``summarise``'s rows to ``path`` (PNG); ``UserError`` when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display: a file, never a window
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("--png needs matplotlib: pip install 'flotilla[plot]' (or pip install matplotlib)") from None
    by_cost = all(r.get("cost_per_task") is not None for r in rows)
    key, label = ("cost_per_task", "cost per task (USD)") if by_cost else (
        "seconds_per_task", "seconds per task (cost unknown for some configuration)")
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    for row in rows:
        x = row[key] or 0.0
        axes.vlines(x, row["selected@N_rate"], row["any@N_rate"], colors="tab:red", linewidth=2, alpha=0.6)
        axes.scatter([x], [row["any@N_rate"]], marker="^", color="tab:green")
        axes.scatter([x], [row["selected@N_rate"]], marker="o", color="tab:blue")
        axes.scatter([x], [row["pass@1_rate"]], marker="s", color="tab:gray")
        axes.annotate(row["config"], (x, row["selected@N_rate"]), textcoords="offset points", xytext=(6, -4),
                      fontsize=8)
    axes.scatter([], [], marker="^", color="tab:green", label="any@N (some attempt passes the hidden check)")
    axes.scatter([], [], marker="o", color="tab:blue", label="selected@N (the picked attempt passes it)")
    axes.scatter([], [], marker="s", color="tab:gray", label="pass@1 (the first attempt alone)")
    axes.plot([], [], color="tab:red", linewidth=2, alpha=0.6, label="selector loss")
    axes.set_xlabel(label)
    axes.set_ylabel("share of tasks solved")
    axes.set_ylim(-0.05, 1.05)
    axes.set_title(title or "flotilla eval: what N attempts buy", fontsize=10)
    axes.legend(fontsize=7, loc="lower right")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, format="png")
    plt.close(figure)
    return path
