"""Shared pieces of bench/pipeline.py and bench/speed.py: the loops under comparison and a bounded timer.

Each loop is one way to train an epoch of the study's SimpleModel (SGD lr 0.02, momentum 0.5) at one
batch size, measured side by side in one process on one device:
- study:    the study's loop: DataLoader + per-sample PIL image + ToTensor (trainer.data.pipelines.LoaderBatches),
            host-to-device copy, eager step, `loss.item()` every iteration (a host sync per iteration).
- resident: bstui's eager loop: the whole split on the device (trainer.data.pipelines.ResidentBatches), batches
            gathered by the epoch's permutation, trainer.engine.split.plain_step, losses kept on the device and
            copied to the host once per block of 1,000 iterations (as trainer.engine.ledger does).
- graph:    the same with trainer.engine.cuda_graph.GraphStep (one CUDA graph replay per iteration).

Timing (`measure`): untimed warm-up iterations (lazy init, cuDNN, allocator, graph capture), then
iterations until a whole epoch's worth is done or a time budget is spent; the device is synchronised
before the clock starts and after the last iteration (losses flushed), so the figure is honest for
asynchronous GPU work. Epoch time = seconds per timed iteration x iterations per epoch: exact when a
whole epoch's worth was timed, an extrapolation (flagged) when the budget cut it short.
"""

from __future__ import annotations

import abc
import gc
import math
import platform
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from trainer.config import DataConfig, ModelConfig  # noqa: E402
from trainer.data.datasets import DatasetUnavailable, Split, load_dataset  # noqa: E402
from trainer.data.pipelines import LoaderBatches, ResidentBatches  # noqa: E402
from trainer.engine.cuda_graph import GraphStep, index_batches  # noqa: E402
from trainer.engine.split import plain_step  # noqa: E402
from trainer.models.builtin import build_model  # noqa: E402

EPOCH_SAMPLES = (
    60_000  # the study's MNIST epoch: epoch times are for this many samples (CIFAR: set to 50,000)
)
#: The model every loop trains (bench/speed.py --model): the study's SimpleModel unless told otherwise.
MODEL = ModelConfig(name="simple_cnn")
CIFAR_SHAPED = ("cifar10", "cifar100")
LOSS_BLOCK = 1000  # losses per host copy, as trainer.engine.ledger
LR, MOMENTUM = 0.02, 0.5  # the study's optimizer


def resolve_device(name: str) -> torch.device:
    """--device auto|cpu|cuda -> a torch.device; a clear exit when CUDA is asked for but absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda, but torch sees no CUDA GPU; use --device cpu or auto")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU model and torch's thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu ({model}, {torch.get_num_threads()} torch threads)"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_train_split(
    dataset: str, root: str, samples: int, seed: int, log: Callable[[str], None] = print
) -> tuple[Split, str]:
    """The training split to time on (first `samples`), and the dataset's name as used.

    Offline a requested mnist falls back to synthetic-digits, visibly (timings depend on the
    images' shape, not their content).
    """
    cfg = DataConfig(
        dataset=dataset,
        root=root,
        download=False,
        fallback="synthetic-digits",
        train_samples=samples,
        test_samples=1,
    )
    if dataset in CIFAR_SHAPED:  # colour 32x32: a stand-in of its shape when it cannot be read (timings
        cfg.fallback = ""  # depend on the shape, not the pixels), said in the name
        try:
            return load_dataset(cfg, seed=seed, log=log).train, dataset
        except DatasetUnavailable as exc:
            log(f"{exc.dataset} {exc.cause}; timing CIFAR-shaped random tensors instead")
            g = torch.Generator().manual_seed(seed)
            x = torch.randint(0, 256, (samples or 50_000, 3, 32, 32), generator=g, dtype=torch.uint8)
            y = torch.randint(0, 10, (x.shape[0],), generator=g)
            return Split(x, y), f"{dataset}-shaped synthetic tensors (uint8 [N, 3, 32, 32])"
    ds = load_dataset(cfg, seed=seed, log=log)
    return ds.train, ds.name


def _fresh_model(device: torch.device, seed: int) -> tuple[torch.nn.Module, torch.optim.SGD]:
    torch.manual_seed(seed)
    model = build_model(MODEL).to(device)
    return model, torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)


class Loop(abc.ABC):
    """One training loop under test: `step()` does one iteration, `finish()` flushes what is pending."""

    @abc.abstractmethod
    def step(self) -> None:
        """One training iteration of this loop."""

    def finish(self) -> None:  # noqa: B027 - an optional hook: most loops have nothing pending
        pass

    def info(self) -> dict:
        return {}


class StudyLoop(Loop):
    """The study's loop: DataLoader + per-sample ToTensor + copy + eager step + loss.item()."""

    def __init__(
        self,
        split: Split,
        batch_size: int,
        device: torch.device,
        seed: int,
        workers: int = 0,
        pin: bool = False,
    ) -> None:
        self.model, self.opt = _fresh_model(device, seed)
        self.data = LoaderBatches(split, batch_size, device, seed, num_workers=workers, pin_memory=pin)
        self._batches = _cycle(self.data.batches)
        self.last_loss = 0.0

    def step(self) -> None:
        x, y = next(self._batches)
        self.last_loss = plain_step(self.model, self.opt, x, y).item()  # the study's per-iteration sync


class ResidentLoop(Loop):
    """bstui's eager loop: resident data, plain_step, losses copied to the host per block."""

    def __init__(self, split: Split, batch_size: int, device: torch.device, seed: int) -> None:
        self.model, self.opt = _fresh_model(device, seed)
        self.data = ResidentBatches(split, batch_size, device, seed)
        self._batches = _cycle(self.data.batches)
        self._pending: list[torch.Tensor] = []
        self.losses: list[float] = []

    def step(self) -> None:
        x, y = next(self._batches)
        self._pending.append(plain_step(self.model, self.opt, x, y))
        if len(self._pending) >= LOSS_BLOCK:
            self.finish()

    def finish(self) -> None:
        if self._pending:
            self.losses = torch.stack(self._pending).tolist()  # one host sync per block
            self._pending = []


class GraphLoop(ResidentLoop):
    """The fast path: resident data, GraphStep fed index slices of the epoch's permutation."""

    def __init__(
        self,
        split: Split,
        batch_size: int,
        device: torch.device,
        seed: int,
        precision: str = "fp32",
        channels_last: bool = False,
    ) -> None:
        super().__init__(split, batch_size, device, seed)
        self.graph = GraphStep(
            self.model,
            self.opt,
            self.data.images,
            self.data.labels,
            batch_size,
            precision=precision,
            channels_last=channels_last,
        )
        self._indices = _cycle(lambda epoch: index_batches(self.data.epoch_indices(epoch), batch_size))

    def step(self) -> None:
        self._pending.append(self.graph.step(next(self._indices)))
        if len(self._pending) >= LOSS_BLOCK:
            self.finish()

    def info(self) -> dict:
        g = self.graph
        return {
            "captured": bool(g.captured_modes),
            "capture_errors": {str(k): v for k, v in g.capture_errors.items()},
        }


def _cycle(batches_of_epoch: Callable[[int], Iterator]) -> Iterator:
    """Batches of epoch 0, 1, 2, ... without end (a timed run may cross epochs of a small split)."""
    epoch = 0
    while True:
        yield from batches_of_epoch(epoch)
        epoch += 1


@dataclass
class Result:
    """One timed cell: a loop at a batch size."""

    loop: str
    batch_size: int
    iters_per_epoch: int  # for EPOCH_SAMPLES samples
    timed_iters: int
    timed_s: float
    epoch_s: float  # timed_s / timed_iters * iters_per_epoch
    extrapolated: bool  # fewer than iters_per_epoch iterations were timed
    samples_per_s: float
    peak_mem_mb: float | None  # torch.cuda.max_memory_allocated over setup and run; None on CPU
    error: str = ""
    info: dict | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def measure(
    label: str,
    make: Callable[[], Loop],
    batch_size: int,
    device: torch.device,
    *,
    warmup_iters: int,
    budget_s: float,
    min_iters: int = 2,
) -> Result:
    """Build a loop, warm it up, and time it for up to an epoch or `budget_s` seconds (at least min_iters).

    A cell that fails (out of memory, say) is a result with `error` set, not the end of the benchmark.
    """
    ipe = math.ceil(EPOCH_SAMPLES / batch_size)
    free(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        loop = make()
        for _ in range(warmup_iters):
            loop.step()
        loop.finish()
        sync(device)
        n = 0
        t0 = time.perf_counter()
        while n < ipe:
            loop.step()
            n += 1
            if n >= min_iters and time.perf_counter() - t0 > budget_s:
                break
        loop.finish()
        sync(device)
        elapsed = time.perf_counter() - t0
        info = loop.info() or None
    except Exception as exc:  # noqa: BLE001 - one failing cell must not end the benchmark
        error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        return Result(label, batch_size, ipe, 0, 0.0, math.nan, False, math.nan, None, error)
    finally:
        loop = None  # the next cell's memory peak must not include this one's tensors
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return Result(
        loop=label,
        batch_size=batch_size,
        iters_per_epoch=ipe,
        timed_iters=n,
        timed_s=elapsed,
        epoch_s=elapsed / n * ipe,
        extrapolated=n < ipe,
        samples_per_s=n * batch_size / elapsed,
        peak_mem_mb=peak,
        info=info,
    )


def free(device: torch.device) -> None:
    """Drop the last cell's tensors (and CUDA graphs) so the next cell's memory peak is its own."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def peak_rss_mb() -> float:
    """The process's peak resident set so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ratio(a: float, b: float) -> float:
    """a / b, NaN when either is missing."""
    if math.isnan(a) or math.isnan(b) or b <= 0:
        return math.nan
    return a / b


def fmt_s(seconds: float) -> str:
    if math.isnan(seconds):
        return "failed"
    return f"{seconds:.2f}" if seconds < 100 else f"{seconds:.0f}"


def jsonable(value):
    """`value` with NaN/inf floats as None, so the JSON file is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value
