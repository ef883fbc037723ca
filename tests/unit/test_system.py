"""System readings: NVML through the library's own functions (faked), /proc, and the pane's words."""

from __future__ import annotations

import sys

import pytest

from tests.tui.conftest import fake_gpus, fake_system
from tui.feeds.system import FakeNvml, Host, Nvml
from tui.widgets.system_pane import system_text


def test_nvml_readings_come_through_the_library_functions():
    gpus = Nvml(FakeNvml(fake_gpus())).read()
    assert [g.name for g in gpus] == ["NVIDIA H200", "NVIDIA H200"]
    assert gpus[0].util == 87 and gpus[0].power_w == 412 and gpus[0].mem_total == 141 << 30
    assert gpus[1].power_w is None  # not supported on that board: no number, no error


def test_no_driver_or_no_library_is_said_not_crashed(monkeypatch):
    nvml = Nvml(FakeNvml(fail="Driver Not Loaded"))
    assert nvml.read() == [] and "Driver Not Loaded" in nvml.note and nvml.short == "no GPU"
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    missing = Nvml()
    assert missing.read() == [] and "pip install nvidia-ml-py" in missing.note


def test_host_figures_come_from_proc(tmp_path):
    (tmp_path / "stat").write_text("cpu  100 0 100 800 0 0 0 0 0 0\n")
    (tmp_path / "loadavg").write_text("1.50 1.20 1.00 2/300 12345\n")
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "status").write_text("Name:\tpython\nVmRSS:\t  2048 kB\n")
    host = Host(str(tmp_path))
    assert host.cpu_pct() is None  # the first reading has nothing to compare with
    (tmp_path / "stat").write_text("cpu  200 0 200 900 0 0 0 0 0 0\n")
    assert host.cpu_pct() == pytest.approx(200 / 300 * 100)  # busy 200 of 300 jiffies, in floats
    assert host.load1() == 1.5 and host.rss(42) == 2048 * 1024 and host.rss(43) is None


def test_the_pane_says_it_all_on_one_line_or_one_line_per_gpu():
    snap = fake_system().sample(pid=1)
    long = system_text(snap, short=False).plain.split("\n")
    assert len(long) == 3 and "GPU0" in long[0] and "87%" in long[0] and "31.0/141.0 GiB" in long[0]
    assert "412/700 W" in long[0] and "61°C" in long[0] and "trainer 1.5 GiB" in long[2]
    short = system_text(snap, short=True).plain
    assert "\n" not in short and "gpu0 87%" in short and "gpu1 12%" in short and "cpu 42%" in short
    none = system_text(fake_system(gpus=False).sample(pid=None), short=True).plain
    assert none.startswith("no GPU") and "trainer: not running here" in none
