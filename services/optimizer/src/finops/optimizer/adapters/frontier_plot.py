"""The cost-quality frontier of the routing policy drawn to an image file (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from finops.optimizer.domain.backtest import (
    DEFAULT_TARGETS,
    Outcomes,
    ProgressCallback,
    frontier_points,
)

__all__ = ["plot_frontier"]


def plot_frontier(
    data: Outcomes,
    out_png: str | Path,
    targets: Sequence[float] = DEFAULT_TARGETS,
    seed: int = 0,
    *,
    label: str = "outcomes",
    progress: ProgressCallback | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    """Draw cost per prompt (log x) against mean quality for the policy at each target, every
    single model and the per-prompt oracle; save to ``out_png`` and return the plotted points."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    pts = frontier_points(data, targets, seed, progress=progress)
    fig, ax = plt.subplots(figsize=(7.5, 5.0), dpi=120)
    pol = pts["policy"]
    xs = [r["policy_cost_per_prompt"] for _, r in pol]
    ys = [r["policy_quality"] for _, r in pol]
    ax.plot(xs, ys, "o-", color="tab:blue", label="routing policy (quality target)")
    for (target, r), x, y in zip(pol, xs, ys, strict=True):
        ax.annotate(
            f"{target:.2f}: q={r['quality_ratio']:.3f}, save {r['saving']:.0%}",
            (x, y),
            textcoords="offset points",
            xytext=(6, -10),
            fontsize=7,
            color="tab:blue",
        )
    for model, (q, c) in sorted(pts["models"].items()):
        marker = "*" if model == pts["best_model"] else "s"
        ax.scatter([c], [q], marker=marker, s=90, color="tab:gray", zorder=3)
        ax.annotate(
            model.split("/")[-1],
            (c, q),
            textcoords="offset points",
            xytext=(6, 4),
            fontsize=8,
            color="dimgray",
        )
    oq, oc = pts["oracle"]
    ax.scatter([oc], [oq], marker="D", s=60, color="tab:green", zorder=3, label="per-prompt oracle")
    ax.set_xscale("log")
    ax.set_xlabel("cost per prompt (USD, log scale)")
    ax.set_ylabel("mean quality")
    ax.set_title(title or f"Cost-quality frontier: {label} (seed {seed})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return pts
