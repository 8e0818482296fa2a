"""Does a TorchScript model load and give the same logits on another torch? (issue 12: models must load on
the oldest supported torch, not only on the one they were exported with.)

Two steps, because the other torch lives in its own environment (old Linux wheels are multi-GB CUDA builds, so
this stays out of CI):

    python benchmarks/torch_compat.py reference --model models/translocnet.pt --out ref.pt
    /path/to/old-torch-venv/bin/python benchmarks/torch_compat.py check --model models/translocnet.pt \
        --ref ref.pt

`check` needs only torch and the standard library. It prints the torch version, the largest logit difference
and exits 1 when the file does not load or differs by more than --tol. `report` does both steps for every
interpreter given and writes the `torch-compat` section of BENCHMARKS.md:

    python benchmarks/torch_compat.py report --python /path/to/venv-2.4/bin/python /path/to/venv-2.11/bin/python
"""

from __future__ import annotations

import argparse
import sys


def inputs(torch):
    """A fixed scan, aerial patch and yaw set (known and unknown-yaw sized)."""
    g = torch.Generator().manual_seed(0)
    span = torch.tensor([90.0, 90.0, 8.0, 1.0])
    points = torch.rand(30000, 4, generator=g) * span - torch.tensor([45.0, 45.0, 2.0, 0.0])
    aerial = (torch.rand(3, 208, 208, generator=g) * 255).to(torch.uint8)
    return points, aerial, torch.linspace(-3.1, 3.1, 25)


def logits(torch, model: str):
    module = torch.jit.load(model, map_location="cpu").eval()
    points, aerial, yaws = inputs(torch)
    with torch.no_grad():
        mb, ma, observed = module.encode(points, aerial)
        return module.score(mb, ma, observed, yaws), (points, aerial, yaws)


def main() -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("step", choices=["reference", "check", "report"])
    p.add_argument("--python", nargs="+", default=[], help="report: interpreters with other torch versions")
    p.add_argument("--model", default="models/translocnet.pt")
    p.add_argument("--ref", default="torch_compat_ref.pt")
    p.add_argument("--out", default=None)
    p.add_argument("--tol", type=float, default=1e-4)
    args = p.parse_args()
    if args.step == "reference":
        out, data = logits(torch, args.model)
        torch.save({"torch": str(torch.__version__), "inputs": data, "logits": out}, args.out or args.ref)
        print(f"reference logits {tuple(out.shape)} with torch {torch.__version__}")
        return 0
    if args.step == "report":
        return report(args)
    ref = torch.load(args.ref, weights_only=True)
    module = torch.jit.load(args.model, map_location="cpu").eval()
    with torch.no_grad():
        mb, ma, observed = module.encode(*ref["inputs"][:2])
        out = module.score(mb, ma, observed, ref["inputs"][2])
    diff = float((out - ref["logits"]).abs().max())
    ok = diff <= args.tol
    print(
        f"torch {torch.__version__}: loaded, logits {tuple(out.shape)}, max abs diff vs torch {ref['torch']} "
        f"= {diff:.2e} ({'OK' if ok else 'FAIL'}, tol {args.tol:g})"
    )
    return 0 if ok else 1


def report(args) -> int:
    import subprocess
    import tempfile
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    from benchmarks.report import write_section

    ref = Path(tempfile.mkdtemp()) / "ref.pt"
    subprocess.run(
        [sys.executable, __file__, "reference", "--model", args.model, "--out", str(ref)], check=True
    )
    rows, ok = [], True
    for py in args.python:
        out = subprocess.run(
            [py, __file__, "check", "--model", args.model, "--ref", str(ref), "--tol", str(args.tol)],
            capture_output=True,
            text=True,
        )
        last = (out.stdout.strip().splitlines() or out.stderr.strip().splitlines() or ["no output"])[-1]
        ok &= out.returncode == 0
        version = last.split(":")[0] if last.startswith("torch ") else f"`{py}`"
        verdict = "loads, same logits" if out.returncode == 0 else "FAILS"
        rows.append(f"| {version} | {verdict} | {last.split(': ', 1)[-1]} |")
    import torch

    body = "\n".join(
        [
            "## Model file portability across torch versions",
            "",
            f"Command: `python benchmarks/torch_compat.py report --model {args.model} --python <venv>/bin/python ...` "
            f"(one venv per torch version, outside the repository; the reference is torch {torch.__version__}). "
            f"Fixed inputs: 30,000 points, a 208 px patch, 25 yaws. Date: {time.strftime('%Y-%m-%d')}.",
            "",
            "| torch | result | check output |",
            "|---|---|---|",
            *rows,
        ]
    )
    write_section("torch-compat", body)
    print(body)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
