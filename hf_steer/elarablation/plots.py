"""Before/after plots (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from ..plotting import pyplot, save_figure


def plot_token_probs(before: list[tuple[str, float]], after: list[tuple[str, float]], path: str | os.PathLike,
                     title: str = "Top-20 next tokens") -> Path:
    """Two bar charts side by side: the top tokens before and after training."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    for ax, rows, label in ((axes[0], before, "before"), (axes[1], after, "after")):
        ax.bar(range(len(rows)), [p for _, p in rows], color="tab:red" if label == "before" else "tab:green")
        ax.set_xticks(range(len(rows)), [repr(t)[1:-1] for t, _ in rows], rotation=70, fontsize=8)
        ax.set_title(f"{title} — {label}")
        ax.set_ylabel("probability")
    return save_figure(fig, path, dpi=100)


def name_shares(counts: Counter, k: int, total: int | None = None) -> list[tuple[str, float]]:
    """The ``k`` most common names with their share of ``total`` named samples (default: of ``counts``)."""
    named = Counter({n: c for n, c in counts.items() if n})
    total = (total if total is not None else sum(named.values())) or 1
    return [(n, c / total) for n, c in named.most_common(k)]


def plot_names(before: Counter, after: Counter, path: str | os.PathLike, title: str = "Sampled names",
               k: int = 15, totals: tuple[int, int] | None = None) -> Path:
    """Share of the top-``k`` names before and after (samples without a name left out).

    ``totals`` are the numbers of named samples when the counters hold only the most common names;
    without it the shares are taken over the counters themselves.
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    for i, (ax, counts, label) in enumerate(((axes[0], before, "before"), (axes[1], after, "after"))):
        top = name_shares(counts, k, totals[i] if totals else None)
        colors = ["tab:red" if n.startswith("El") else "tab:blue" for n, _ in top]
        ax.bar(range(len(top)), [share for _, share in top], color=colors)
        ax.set_xticks(range(len(top)), [n for n, _ in top], rotation=70, fontsize=8)
        ax.set_title(f"{title} — {label} (red: El-)")
        ax.set_ylabel("share of named samples")
    return save_figure(fig, path, dpi=100)


def plot_original_files(results: list[dict], path: str | os.PathLike) -> Path:
    """Bad mass at each original context file's slot, before and after training on that file alone."""
    plt = pyplot()
    names = [r["file"].rsplit("/", 1)[-1].removesuffix(".yaml") for r in results]
    fig, ax = plt.subplots(figsize=(max(8, len(results) * 0.32), 5))
    x = range(len(results))
    ax.bar([i - 0.2 for i in x], [r["before"] for r in results], width=0.4, color="tab:red", label="before")
    ax.bar([i + 0.2 for i in x], [r["after"] for r in results], width=0.4, color="tab:green", label="after")
    ax.set_xticks(list(x), names, rotation=80, fontsize=7)
    ax.set_ylabel("bad mass at the slot (whole vocabulary, T=1;\na file with no bad token: its good band miss)")
    ax.set_title(f"Original elarablate files: {sum(r['lowered'] for r in results)} of {len(results)} lowered")
    ax.legend()
    return save_figure(fig, path, dpi=100)


def plot_slot_bench(result: dict, path: str | os.PathLike) -> Path:
    """The slot bench: top names at T=0.7 before/after (El- in red), and each back-reference's name probability."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(18, 5))
    for ax, key, label in ((axes[0], "before", "before"), (axes[1], "after", "after")):
        top = name_shares(Counter(dict(result[f"top10_names_t07_{key}"])), 10, result[f"named_total_t07_{key}"])
        ax.bar(range(len(top)), [share for _, share in top],
               color=["tab:red" if n.startswith("El") else "tab:blue" for n, _ in top])
        ax.set_xticks(range(len(top)), [n for n, _ in top], rotation=70, fontsize=8)
        ax.set_title(f"Held-out name slots, T=0.7: {label} (El- {100 * result[f'incidence_t07_{key}']:.1f}%)")
        ax.set_ylabel("share of named samples")
    rows = result["reference_rows"]
    x = range(len(rows))
    axes[2].bar([i - 0.2 for i in x], [r["before"] for r in rows], width=0.4, color="tab:gray", label="before")
    axes[2].bar([i + 0.2 for i in x], [r["after"] for r in rows], width=0.4, color="tab:green", label="after")
    axes[2].set_xticks(list(x), [r["expected"] for r in rows], rotation=70, fontsize=8)
    axes[2].set_ylabel("p(introduced name) at the back-reference slot")
    axes[2].set_title(f"Back-references: {100 * result['reference_kept']:.0f}% kept "
                      f"(El- {100 * result['reference_kept_el']:.0f}%)")
    axes[2].legend()
    return save_figure(fig, path, dpi=100)


def plot_story_report(result: dict, path: str | os.PathLike, k: int = 20) -> Path:
    """Story-level before/after: the targeted patterns' rates, then slop index, distinct-2 and looping share."""
    plt = pyplot()
    before, after = result["before"], result["after"]
    rates = before.get("pattern_rates", {})
    top = sorted(rates, key=lambda p: -rates[p])[:k]
    fig, axes = plt.subplots(1, 2, figsize=(16, 5), gridspec_kw={"width_ratios": [3, 1]})
    x = range(len(top))
    axes[0].bar([i - 0.2 for i in x], [rates[p] for p in top], width=0.4, color="tab:red", label="before")
    axes[0].bar([i + 0.2 for i in x], [after["pattern_rates"].get(p, 0.0) for p in top], width=0.4,
                color="tab:green", label="after")
    axes[0].set_xticks(list(x), top, rotation=70, fontsize=8)
    axes[0].set_ylabel("occurrences per 1,000 words")
    axes[0].set_title(f"Targeted patterns in held-out stories ({before['stories']} before, {after['stories']} after)")
    axes[0].legend()
    names = ["slop index /10", "distinct-2 x10", "looping %"]
    values_b = [before["slop_index"] / 10, before["distinct_2"] * 10, before["looping"] * 100]
    values_a = [after["slop_index"] / 10, after["distinct_2"] * 10, after["looping"] * 100]
    if "judge_ppl" in before:
        names.append("judge ppl /10")
        values_b.append(before["judge_ppl"] / 10)
        values_a.append(after["judge_ppl"] / 10)
    x = range(len(names))
    axes[1].bar([i - 0.2 for i in x], values_b, width=0.4, color="tab:red", label="before")
    axes[1].bar([i + 0.2 for i in x], values_a, width=0.4, color="tab:green", label="after")
    axes[1].set_xticks(list(x), names, rotation=30, fontsize=8)
    axes[1].set_title("Whole stories")
    return save_figure(fig, path, dpi=100)
