"""The audit's timeline chart, drawn with matplotlib (the optional `plot` extra) as inline SVG.

One chart per component: the hard minimum and the announced next minimum as
steps over time, each distribution release's shipped version as a segment
from its release to its end of support, the calendar's releases as vertical
lines and each still-supported platform a raise dropped as a red cross.
"""

from __future__ import annotations

import io

from bot.core.version import Version

INSTALL_HINT = "pip install 'minbump[plot]'"


def available() -> bool:
    """Whether matplotlib can be imported (the chart is optional; the table is not)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def draw_svg(data: dict) -> str:
    """An SVG document for one component's `timeline.chart_data`."""
    return draw(data, "svg").decode("utf-8")


def draw(data: dict, fmt: str = "svg") -> bytes:
    """One component's `timeline.chart_data` drawn as `fmt` (svg for the page, png for docs/)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    matplotlib.rcParams["svg.hashsalt"] = "minbump"  # the same chart gives the same file
    start, end = data["start"], data["end"]
    # An ordinal y axis: one step per distinct version, so 1.2.1 -> 1.2.9 is as visible as 6.0 -> 8.0.
    rank = {Version.parse(v): i for i, v in enumerate(data["axis"])}

    def y(text: str) -> float:
        return float(rank[Version.parse(text)])

    fig, ax = plt.subplots(figsize=(10, 5.6), dpi=100)
    try:
        groups: dict[float, list] = {}
        for p in data["platforms"]:
            groups.setdefault(y(p[3]), []).append(p)
        for base, members in groups.items():
            members.sort(key=lambda p: p[1])
            labelled: set[str] = set()
            for i, (label, released, stop, _version) in enumerate(members):
                # Releases shipping the same version share its row, spread a little so each stays readable.
                yy = base + (i - (len(members) - 1) / 2) * min(0.7 / max(len(members), 1), 0.22)
                ax.hlines(yy, max(released, start), min(stop, end), color="#9aa5b1", linewidth=3, alpha=0.6)
                if label not in labelled:
                    labelled.add(label)
                    ax.annotate(label, (max(released, start), yy), xytext=(2, 1.5), textcoords="offset points",
                                fontsize=5.5, color="#52606d")
        for day, name in data["releases"]:
            ax.axvline(day, color="#cbd2d9", linewidth=0.8, linestyle="--", zorder=0)
            ax.annotate(name, (day, 1.0), xycoords=("data", "axes fraction"), xytext=(2, -4),
                        textcoords="offset points", fontsize=6.5, rotation=90, va="top", color="#7b8794")
        for key, color, style, label in (("next", "#d9822b", "--", "next minimum (announced)"),
                                         ("hard", "#1f4e79", "-", "hard minimum")):
            series = data[key]
            if not series:
                continue
            xs = [d for d, _ in series] + [end]
            ys = [y(v) for _, v in series]
            ys.append(ys[-1])
            ax.step(xs, ys, where="post", color=color, linestyle=style, linewidth=2.2, label=label,
                    zorder=4 if key == "hard" else 3)
        if data["drops"]:
            ax.scatter([d for d, _, _ in data["drops"]], [y(v) for _, v, _ in data["drops"]], marker="x",
                       color="#c0392b", s=50, linewidths=2, zorder=5, label="still supported, dropped")
        ax.set_yticks(range(len(data["axis"])), data["axis"], fontsize=6.5)
        ax.set_ylim(-0.7, len(data["axis"]) - 0.3)
        ax.set_xlim(start, end)
        ax.set_title(f"{data['component']}: minimums against what distributions ship", fontsize=11)
        ax.set_ylabel(f"{data['component']} version (one step per version)")
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m"))
        ax.grid(axis="y", color="#eef0f2")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, fontsize=7, frameon=False)
        fig.autofmt_xdate()
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, metadata={"Date": None} if fmt == "svg" else None)
        return buf.getvalue()
    finally:
        plt.close(fig)
