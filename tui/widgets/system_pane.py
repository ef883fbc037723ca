"""What the machine is doing: per-GPU utilisation, memory, power, temperature; host CPU; trainer memory.

A few lines on a big terminal (one per GPU, then the host), one line on a small one. The
figures come from tui.feeds.system, read by a thread of the app about once a second.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui.feeds.system import GpuStat, SystemSnapshot

GIB = 1 << 30
#: Terminals at least this tall show one line per GPU; smaller ones one line in all.
TALL = 36


def _gib(n: int | None) -> str:
    return "-" if n is None else f"{n / GIB:.1f}"


def _bar(pct: float | None, width: int = 10) -> str:
    if pct is None:
        return "·" * width
    full = round(width * min(100.0, max(0.0, pct)) / 100)
    return "█" * full + "░" * (width - full)


def _level(pct: float | None) -> str:
    return "" if pct is None else "bold red" if pct >= 95 else "bold yellow" if pct >= 80 else "bold green"


def gpu_line(g: GpuStat, short: bool) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    util = "-" if g.util is None else f"{g.util:.0f}%"
    mem_pct = 100 * g.mem_used / g.mem_total if g.mem_used is not None and g.mem_total else None
    if short:
        text.append(f"gpu{g.index} ", style="bold")
        text.append(util, style=_level(g.util))
        text.append(f" {_gib(g.mem_used)}/{_gib(g.mem_total)}G")
        if g.power_w is not None:
            text.append(f" {g.power_w:.0f}W")
        if g.temp_c is not None:
            text.append(f" {g.temp_c:.0f}°C")
        return text
    text.append(f"GPU{g.index} ", style="bold")
    text.append(f"{g.name[:22]:<22} ", style="dim")
    text.append(_bar(g.util), style=_level(g.util) or "dim")
    text.append(f" {util:>4} util  ")
    text.append(f"mem {_gib(g.mem_used)}/{_gib(g.mem_total)} GiB", style=_level(mem_pct))
    if g.power_w is not None:
        limit = f"/{g.power_limit_w:.0f}" if g.power_limit_w else ""
        text.append(f"  {g.power_w:.0f}{limit} W")
    if g.temp_c is not None:
        text.append(f"  {g.temp_c:.0f}°C")
    return text


def host_text(s: SystemSnapshot, short: bool) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    cpu = "-" if s.cpu_pct is None else f"{s.cpu_pct:.0f}%"
    text.append("cpu " if short else "host ", style="bold")
    if not short:
        text.append(f"cpu {cpu}", style=_level(s.cpu_pct))
        if s.load1 is not None:
            text.append(f"  load {s.load1:.2f} on {s.cores or '?'} cores")
    else:
        text.append(cpu, style=_level(s.cpu_pct))
        if s.load1 is not None:
            text.append(f" ld {s.load1:.1f}/{s.cores or '?'}")
    text.append(" · " if short else "  ·  ")
    if s.trainer_rss is not None:
        text.append(f"trainer {_gib(s.trainer_rss)}" + ("G" if short else " GiB RSS"))
    else:
        text.append(s.trainer_note or "trainer: -", style="dim")
    return text


def system_text(s: SystemSnapshot | None, short: bool) -> Text:
    """The pane's content (pure: tests call it). `short`: everything on one line."""
    if s is None:
        return Text("system: reading…", style="dim")
    if short:
        text = Text(no_wrap=True, overflow="ellipsis")
        if s.gpus:
            for g in s.gpus:
                text.append_text(gpu_line(g, True))
                text.append(" · ")
        else:
            text.append(s.gpu_short or "GPU ?", style="dim")
            text.append(" · ")
        text.append_text(host_text(s, True))
        return text
    lines = [gpu_line(g, False) for g in s.gpus] or [Text(s.gpu_note or "GPU: not known", style="dim")]
    lines.append(host_text(s, False))
    return Text("\n").join(lines)


class SystemPane(Static):
    """The system figures; one line on small terminals."""

    DEFAULT_CSS = """
    SystemPane {
        height: auto;
        max-height: 5;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        border-top: solid $primary-darken-2;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.snapshot: SystemSnapshot | None = None

    def show(self, snapshot: SystemSnapshot | None) -> None:
        self.snapshot = snapshot
        self.update(system_text(snapshot, self.short))

    @property
    def short(self) -> bool:
        return self.app.size.height < TALL

    def on_resize(self) -> None:
        self.update(system_text(self.snapshot, self.short))
