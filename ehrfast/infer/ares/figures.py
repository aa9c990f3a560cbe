"""The ARES pictures (ARES.md S7; the paper's Figs 2–3 and Table S10): for one stay, the four
component curves with their 95 % bands on a token axis and on real elapsed time, the token strip
with the explanation's groups marked, and the ten-symbol ARES bar in the five-level palette; and
an overview of several stays, one row of bars each."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from ehrfast.infer.ares.explanations import ExplainedGroup
from ehrfast.infer.ares.trajectory import RiskTrajectory, StayTrajectory
from ehrfast.infer.risk import risk_level
from ehrfast.units import US_PER_DAY

# the four curves a clinician sees (the joint composite is the report's composite; ARES.md decision c)
SHOWN = {"hospital_mortality": ("Death", "#c0392b"), "icu_admission": ("ICU admission", "#2471a3"),
         "prolonged_stay": ("Prolonged stay", "#d68910"), "composite": ("Composite", "#7d3c98")}
LEVEL_COLORS = {1: "#1a9850", 2: "#a6d96a", 3: "#fee08b", 4: "#fdae61", 5: "#d73027"}  # ARES's five levels, low → high
LEVEL_NAMES = {1: "0–20 %", 2: "20–40 %", 3: "40–60 %", 4: "60–80 %", 5: "80–100 %"}
BAR_SYMBOLS = 10
STYLE = ("<style>.ares-cell{display:inline-block;width:12px;height:14px;margin:0 1px;font-size:9px;line-height:14px;"
         "text-align:center;color:#222}.ares-off{background:#fff;border:1px dashed #ddd;width:10px;height:12px}"
         ".ares td,.ares th{text-align:left;padding:3px 5px;vertical-align:top}.ares-overview td:nth-child(n+3){white-space:nowrap}"
         ".ares td{word-break:break-word}</style>")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_positions(st: StayTrajectory, n: int = BAR_SYMBOLS) -> np.ndarray:
    """[≤ n] rows of ``st`` evenly spaced over the stay (the reference's ``create_ares_overview``)."""
    rows = len(st.positions)
    return np.unique(np.round(np.linspace(0, rows - 1, min(n, rows))).astype(int))


UNKNOWN = 0  # a moment without a valid sampled future: no level


def bar_levels(st: StayTrajectory, component: str, n: int = BAR_SYMBOLS) -> list[int | None]:
    """The level (1–5) of ``component`` at each bar position; None where deactivated, ``UNKNOWN``
    where no sampled future was valid."""
    out: list[int | None] = []
    for r in bar_positions(st, n):
        p = st.risk[component][r]
        if component == "icu_admission" and st.deactivated[r]:
            out.append(None)
        else:
            out.append(UNKNOWN if not np.isfinite(p) else int(risk_level([min(max(p, 0.0), 1.0)])[0]))
    return out


def stay_title(st: StayTrajectory) -> str:
    s = st.stay
    outcome = f", outcome: {s.true_event}" if s.true_event else ""
    return f"subject {s.subject_id}, admission {s.hadm_id if s.hadm_id is not None else s.anchor_id}{outcome}"


def stay_figure(path: Path, traj: RiskTrajectory, st: StayTrajectory, groups: list[ExplainedGroup],
                truth: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> Path:
    """The ARES panel of one stay as a PNG. ``groups``: the explanation to mark on the token
    strip; ``truth``: component -> (elapsed days, true risk), drawn dashed beside the estimate
    (the synthetic world's exact risk)."""
    plt = _pyplot()
    fig = plt.figure(figsize=(11, 9.2))
    grid = fig.add_gridspec(4, 1, height_ratios=[3, 3, 1.6, 1.25], hspace=0.55)
    ax_tok, ax_time, ax_strip, ax_bar = (fig.add_subplot(grid[i]) for i in range(4))
    x_tok = st.positions - st.stay.start
    days = st.elapsed_us / US_PER_DAY
    for component, (label, color) in SHOWN.items():
        risk = st.risk[component]
        lo, hi = st.ci[component]
        known = np.isfinite(risk)  # positions without a valid future are skipped; a deactivated ICU ends its curve
        for ax, x in ((ax_tok, x_tok), (ax_time, days)):
            ax.plot(x[known], risk[known], color=color, lw=1.5, label=label if ax is ax_tok else None, drawstyle="steps-post")
            ax.fill_between(x[known], lo[known], hi[known], color=color, alpha=0.08, step="post", lw=0)
        if truth and component in truth:
            t_days, t_risk = truth[component]
            ax_time.plot(t_days, t_risk, color=color, lw=1.1, ls="--", drawstyle="steps-post")
    for ax in (ax_tok, ax_time):
        ax.set_ylim(0, 1)
        ax.set_ylabel("risk")
        ax.grid(alpha=0.25)
        for cut in (0.2, 0.4, 0.6, 0.8):
            ax.axhline(cut, color="#999", lw=0.5, ls=":")
    markers = []
    if st.stay.icu >= 0:
        markers.append((st.stay.icu - st.stay.start, None, "ICU admission"))
    switch = np.flatnonzero(st.threshold_days > st.threshold_days[0])
    if len(switch):
        markers.append((x_tok[switch[0]], days[switch[0]], f"day {traj.settings.thresholds_days[0]:g}: PS → {traj.settings.thresholds_days[1]:g} d"))
    for x, d, text in markers:
        ax_tok.axvline(x, color="#555", lw=0.9, ls="--")
        ax_tok.text(x, 0.97, " " + text, fontsize=8, va="top", color="#333")
        if d is not None:
            ax_time.axvline(d, color="#555", lw=0.9, ls="--")
    if st.stay.icu >= 0:
        at = np.flatnonzero(st.positions >= st.stay.icu)
        if len(at):
            ax_time.axvline(days[at[0]], color="#555", lw=0.9, ls="--")
    ax_tok.set_xlabel("tokens since admission")
    ax_time.set_xlabel("days since admission" + ("   (dashed: the true risk)" if truth else ""))
    fig.suptitle(f"ARES — {stay_title(st)}", fontsize=11, x=0.02, ha="left", y=0.995)
    fig.legend(loc="upper right", fontsize=8, ncol=4, frameon=False, bbox_to_anchor=(0.99, 0.975))
    _token_strip(ax_strip, traj, st, groups, x_tok)
    _bar(ax_bar, st)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _token_strip(ax, traj: RiskTrajectory, st: StayTrajectory, groups: list[ExplainedGroup], x_tok: np.ndarray) -> None:
    """Every stay token as a tick (by kind), the explanation's groups as labelled spans."""
    tok, _ = traj.timelines[st.stay.subject_id]
    kinds = traj.kinds or []
    span = np.arange(st.stay.start, st.stay.end)
    palette = {"interval": "#bbbbbb", "quantile": "#d0d0ff", "code": "#555555", "visit": "#2e86c1", "static": "#999999", "special": "#999999"}
    colors = [palette.get(kinds[int(tok[i])] if kinds else "code", "#555555") for i in span]
    ax.vlines(span - st.stay.start, 0, 0.35, colors=colors, lw=0.8)
    for g in groups:
        color = "#c0392b" if g.direction == "up" else "#1e8449"
        a, b = g.first - st.stay.start, g.last - st.stay.start
        ax.axvspan(a - 0.5, b + 0.5, ymin=0, ymax=0.4, color=color, alpha=0.35)
        label = g.tokens if len(g.tokens) <= 38 else g.tokens[:36] + "…"
        ax.annotate(f"{g.rank}. {label} ({g.delta:+.2f})", xy=((a + b) / 2, 0.4), xytext=((a + b) / 2, 0.55 + 0.09 * ((g.rank - 1) % 5)),
                    fontsize=7, color=color, ha="center", arrowprops={"arrowstyle": "-", "color": color, "lw": 0.6})
    ax.set_xlim(x_tok.min() - 1 if len(x_tok) else -1, st.stay.end - st.stay.start)
    ax.set_ylim(0, 1.05)
    ax.set_yticks([])
    ax.set_xlabel("stay tokens (red: raised the composite's risk, green: lowered it)", fontsize=8)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)


def _bar(ax, st: StayTrajectory) -> None:
    """The ten-symbol ARES bar per component, in the five-level palette."""
    for row, (component, (label, _)) in enumerate(SHOWN.items()):
        for col, level in enumerate(bar_levels(st, component)):
            if level is None:
                continue  # a deactivated component shows no symbol (Table S10)
            ax.add_patch(_pyplot().Rectangle((col, -row - 0.4), 0.85, 0.8, color=LEVEL_COLORS.get(level, "#e5e5e5")))
            ax.text(col + 0.425, -row, str(level) if level else "?", ha="center", va="center", fontsize=7)
        ax.text(-0.2, -row, label, ha="right", va="center", fontsize=8)
    ax.set_xlim(-0.1, BAR_SYMBOLS)
    ax.set_ylim(-len(SHOWN) + 0.4, 0.6)
    ax.axis("off")
    ax.set_title("ARES overview: 10 evenly spaced moments of the stay (levels 1–5; ?: no valid future; blank: switched off)", fontsize=9,
                 loc="left")


def bar_html(levels: list[int | None]) -> str:
    """The ten-symbol bar as coloured HTML cells (a deactivated moment: an empty cell)."""
    cells = []
    for level in levels:
        if level is None:
            cells.append("<span class='ares-cell ares-off' title='deactivated'></span>")
        elif level == UNKNOWN:
            cells.append("<span class='ares-cell' style='background:#e5e5e5' title='no valid sampled future'>?</span>")
        else:
            cells.append(f"<span class='ares-cell' style='background:{LEVEL_COLORS[level]}' title='level {level}: "
                         f"{LEVEL_NAMES[level]}'>{level}</span>")
    return "".join(cells)


def overview_html(traj: RiskTrajectory) -> str:
    """Table S10: one row per stay, the bar of each component."""
    head = "".join(f"<th>{label}</th>" for label, _ in SHOWN.values())
    rows = []
    for st in traj.stays:
        cells = "".join(f"<td>{bar_html(bar_levels(st, c))}</td>" for c in SHOWN)
        s = st.stay
        rows.append(f"<tr><td>{s.subject_id} / {s.hadm_id if s.hadm_id is not None else s.anchor_id}</td><td>{html.escape(str(s.true_event))}</td>"
                    f"{cells}</tr>")
    legend = " ".join(f"<span class='ares-cell' style='background:{c};width:auto;padding:0 4px'>{k}: {LEVEL_NAMES[k]}</span>"
                      for k, c in LEVEL_COLORS.items())
    return f"{STYLE}<table class='ares ares-overview'><tr><th>subject / admission</th><th>outcome</th>{head}</tr>{''.join(rows)}</table><p>{legend}</p>"


def table_html(header: list[str], rows: list[list]) -> str:
    """A left-aligned table of text (the explanation tables)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"{STYLE}<table class='ares'><tr>{head}</tr>{body}</table>"


def overview_markdown(traj: RiskTrajectory) -> str:
    lines = ["| stay | " + " | ".join(label for label, _ in SHOWN.values()) + " |", "|---" * (len(SHOWN) + 1) + "|"]
    for st in traj.stays:
        bars = ["".join("·" if lv is None else "?" if lv == UNKNOWN else str(lv) for lv in bar_levels(st, c)) for c in SHOWN]
        lines.append(f"| {stay_title(st)} | " + " | ".join(bars) + " |")
    return "\n".join(lines)
