"""What the machine is doing: GPUs through NVML, host CPU load and the trainer's memory.

Read by a thread of the app about once a second, never by the trainer (its hot loop stays
free of it). NVML comes from nvidia-ml-py (`pynvml`), imported on first use only: the app
starts without it, and a machine without the library, the driver or a GPU gets a sentence
saying so instead of numbers. `FakeNvml` stands in for the library in tests; it has the
same functions, so the real reading code runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class GpuStat:
    """One GPU now: utilisation %, memory used/total (bytes), power (W) and temperature (°C)."""

    index: int
    name: str
    util: float | None = None
    mem_used: int | None = None
    mem_total: int | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    temp_c: float | None = None


@dataclass(frozen=True)
class SystemSnapshot:
    """One reading of everything the system pane shows."""

    gpus: tuple[GpuStat, ...] = ()
    #: Why there are no GPU figures ("" when there are), in a sentence and in two words.
    gpu_note: str = ""
    gpu_short: str = ""
    cpu_pct: float | None = None  # host CPU busy, all cores, since the previous reading
    load1: float | None = None
    cores: int | None = None
    trainer_rss: int | None = None  # bytes
    trainer_note: str = ""


class SystemSource(Protocol):
    """Gives a snapshot for the trainer process `pid` (None: no trainer on this host)."""

    def sample(self, pid: int | None) -> SystemSnapshot: ...


def _decode(name: Any) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)


class Nvml:
    """GPU readings through an NVML library (pynvml, or a fake with its functions)."""

    def __init__(self, lib: Any = None) -> None:
        self._lib = lib
        self._handles: list[Any] | None = None
        self._names: list[str] = []
        self.note = ""
        self.short = ""

    def _init(self) -> bool:
        if self._handles is not None:
            return True
        if self.note:
            return False  # failed before: do not retry every second
        lib = self._lib
        if lib is None:
            try:
                import pynvml as lib  # on first reading only: the app must start without it
            except ImportError:
                self.note, self.short = (
                    "GPU: nvidia-ml-py is not installed (pip install nvidia-ml-py)",
                    "no NVML",
                )
                return False
        try:
            lib.nvmlInit()
            count = lib.nvmlDeviceGetCount()
            handles = [lib.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            names = [_decode(lib.nvmlDeviceGetName(h)) for h in handles]
        except Exception as exc:  # noqa: BLE001 - NVMLError and kin: no driver, no GPU
            self.note, self.short = f"GPU: none visible to NVML ({exc})", "no GPU"
            return False
        if not handles:
            self.note, self.short = "GPU: NVML sees no GPU on this machine", "no GPU"
            return False
        self._lib, self._handles, self._names = lib, handles, names
        return True

    def read(self) -> list[GpuStat]:
        """One GpuStat per GPU; [] (and `note` says why) when NVML cannot be used."""
        if not self._init():
            return []
        lib = self._lib
        out = []
        for i, (h, name) in enumerate(zip(self._handles or [], self._names)):
            out.append(
                GpuStat(
                    index=i,
                    name=name,
                    util=_try(lambda: float(lib.nvmlDeviceGetUtilizationRates(h).gpu)),
                    mem_used=_try(lambda: int(lib.nvmlDeviceGetMemoryInfo(h).used)),
                    mem_total=_try(lambda: int(lib.nvmlDeviceGetMemoryInfo(h).total)),
                    power_w=_try(lambda: lib.nvmlDeviceGetPowerUsage(h) / 1000.0),
                    power_limit_w=_try(lambda: lib.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0),
                    temp_c=_try(lambda: float(lib.nvmlDeviceGetTemperature(h, 0))),  # 0: NVML_TEMPERATURE_GPU
                )
            )
        return out


def _try(read: Any) -> Any:
    """A reading the GPU may not support (power on some boards): None instead of an error."""
    try:
        return read()
    except Exception:  # noqa: BLE001 - NVMLError_NotSupported and kin
        return None


@dataclass
class FakeNvml:
    """pynvml's functions over fixed figures (tests, snapshots). `fail` makes nvmlInit raise it."""

    gpus: list[GpuStat] = field(default_factory=list)
    fail: str = ""

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        if self.fail:
            raise RuntimeError(self.fail)

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> GpuStat:  # noqa: N802
        return self.gpus[i]

    def nvmlDeviceGetName(self, h: GpuStat) -> bytes:  # noqa: N802
        return h.name.encode()

    def nvmlDeviceGetUtilizationRates(self, h: GpuStat) -> Any:  # noqa: N802
        return _Obj(gpu=h.util)

    def nvmlDeviceGetMemoryInfo(self, h: GpuStat) -> Any:  # noqa: N802
        return _Obj(used=h.mem_used, total=h.mem_total)

    def nvmlDeviceGetPowerUsage(self, h: GpuStat) -> float:  # noqa: N802
        if h.power_w is None:
            raise RuntimeError("Not Supported")
        return h.power_w * 1000

    def nvmlDeviceGetEnforcedPowerLimit(self, h: GpuStat) -> float:  # noqa: N802
        if h.power_limit_w is None:
            raise RuntimeError("Not Supported")
        return h.power_limit_w * 1000

    def nvmlDeviceGetTemperature(self, h: GpuStat, sensor: int) -> float:  # noqa: N802
        return h.temp_c


class _Obj:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


class Host:
    """Host CPU busy share (from /proc/stat, between readings), load average and a process's memory."""

    def __init__(self, proc: str = "/proc") -> None:
        self.proc = proc
        self._last: tuple[int, int] | None = None

    def cpu_pct(self) -> float | None:
        try:
            with open(f"{self.proc}/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        total = sum(fields[:8])  # guest time is already in user
        last, self._last = self._last, (idle, total)
        if last is None or total <= last[1]:
            return None
        return 100.0 * (1 - (idle - last[0]) / (total - last[1]))

    def load1(self) -> float | None:
        try:
            with open(f"{self.proc}/loadavg") as f:
                return float(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def rss(self, pid: int) -> int | None:
        try:
            with open(f"{self.proc}/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            return None
        return None


class LiveSystem:
    """The real readings: NVML (or a fake library) and /proc."""

    def __init__(self, nvml: Nvml | None = None, host: Host | None = None) -> None:
        self.nvml = nvml or Nvml()
        self.host = host or Host()

    def sample(self, pid: int | None) -> SystemSnapshot:
        gpus = tuple(self.nvml.read())
        rss = self.host.rss(pid) if pid is not None else None
        note = "" if rss is not None else ("trainer: not running here" if pid is None else "trainer: gone")
        return SystemSnapshot(
            gpus=gpus,
            gpu_note=self.nvml.note if not gpus else "",
            gpu_short=self.nvml.short if not gpus else "",
            cpu_pct=self.host.cpu_pct(),
            load1=self.host.load1(),
            cores=os.cpu_count(),
            trainer_rss=rss,
            trainer_note=note,
        )


@dataclass
class FixedSystem:
    """Always the same snapshot (snapshot tests: nothing on screen may change between runs)."""

    snapshot: SystemSnapshot

    def sample(self, pid: int | None) -> SystemSnapshot:
        return self.snapshot
