"""Measurement: split-backward with k chunks at lr against plain steps at lr x k.

Two figures, side by side in one run:
1. exactness at momentum 0: the same batches through k split steps at lr and one plain step at lr x k,
   in float64, from the same initial weights; prints the largest parameter difference after `--steps`;
2. the gap at momentum 0.5 (the study's): SimpleModel on synthetic-digits, split k at lr vs plain at
   lr x k, the same seeds, batches and evaluation; prints test accuracy after each epoch, and the
   epoch each first reaches `--target`.

    python bench/split_lr.py [--chunks 10] [--batch 60] [--lr 0.02] [--epochs 4] [--train 6000]
                             [--seeds 0 1] [--target 0.95] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/common.py

from common import device_name  # noqa: E402

from trainer.data.datasets import synthetic_digits  # noqa: E402
from trainer.engine.split import plain_step, split_step  # noqa: E402
from trainer.models.builtin import SimpleModel  # noqa: E402


def exactness(batch: int, chunks: int, lr: float, steps: int, seed: int) -> float:
    """Max |w_split - w_plain| after `steps` batches, momentum 0, float64."""
    torch.manual_seed(seed)
    split = SimpleModel().double()
    plain = SimpleModel().double()
    plain.load_state_dict(split.state_dict())
    opt_s = torch.optim.SGD(split.parameters(), lr=lr, momentum=0.0)
    opt_p = torch.optim.SGD(plain.parameters(), lr=lr * chunks, momentum=0.0)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.rand(batch, 1, 28, 28, generator=g, dtype=torch.float64)
        y = torch.randint(0, 10, (batch,), generator=g)
        split_step(split, opt_s, x, y, chunks, "vectorized")
        plain_step(plain, opt_p, x, y)
    return max((a - b).abs().max().item() for a, b in zip(split.parameters(), plain.parameters()))


def train(x, y, tx, ty, batch, chunks, lr, momentum, epochs, seed, device) -> list[float]:
    """Test accuracy after each epoch; chunks > 1: split-backward at lr, else plain at lr."""
    torch.manual_seed(seed)
    model = SimpleModel().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    accs = []
    for epoch in range(epochs):
        perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed * 1000 + epoch))
        for start in range(0, x.shape[0] - batch + 1, batch):
            idx = perm[start : start + batch].to(device)
            if chunks > 1:
                split_step(model, opt, x[idx], y[idx], chunks, "vectorized")
            else:
                plain_step(model, opt, x[idx], y[idx])
        with torch.no_grad():
            accs.append((model(tx).argmax(1) == ty).float().mean().item())
    return accs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chunks", type=int, default=10)
    ap.add_argument("--batch", type=int, default=60)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--momentum", type=float, default=0.5)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--train", type=int, default=6000)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(1)
    device = torch.device(args.device)
    print(f"device: {device_name(device)}; torch {torch.__version__}")
    diff = exactness(args.batch, args.chunks, args.lr, args.steps, 0)
    print(
        f"momentum 0, float64: split k={args.chunks} at lr {args.lr:g} vs plain at lr {args.lr * args.chunks:g}, "
        f"{args.steps} batches of {args.batch}: max |parameter difference| = {diff:.2g}"
    )
    ds = synthetic_digits(args.train, args.test, seed=0)
    x = ds.train.images.unsqueeze(1).float().div(255).to(device)
    y = ds.train.labels.to(device)
    tx = ds.test.images.unsqueeze(1).float().div(255).to(device)
    ty = ds.test.labels.to(device)
    print(
        f"momentum {args.momentum:g}: synthetic-digits {args.train:,} train / {args.test:,} test, batch "
        f"{args.batch}, {args.epochs} epochs; test accuracy after each epoch"
    )
    for seed in args.seeds:
        split = train(
            x, y, tx, ty, args.batch, args.chunks, args.lr, args.momentum, args.epochs, seed, device
        )
        plain = train(
            x, y, tx, ty, args.batch, 1, args.lr * args.chunks, args.momentum, args.epochs, seed, device
        )
        for name, accs in (
            (f"split k={args.chunks} lr {args.lr:g}", split),
            (f"plain lr {args.lr * args.chunks:g}", plain),
        ):
            first = next((i + 1 for i, a in enumerate(accs) if a >= args.target), None)
            print(
                f"  seed {seed} {name:>22}: "
                + " ".join(f"{100 * a:5.1f}%" for a in accs)
                + f"   first >= {args.target:.0%}: epoch {first if first else 'never'}"
            )


if __name__ == "__main__":
    main()
