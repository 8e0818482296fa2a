"""Which torch versions can load an exported model: the operators its TorchScript graphs call and the archive's
serialization format version, checked against what the oldest supported torch is known to load.

TorchScript files fail to load on an older torch when they call an operator it does not have (plain scripting
of `F.interpolate` on torch 2.13 pulls in `aten::_upsample_lanczos2d_aa`, unknown to 2.11) or when the archive
declares a newer format. The allow-list below is every operator of the committed model, each checked by
really loading that file in torch OLDEST_TORCH (CPU) and comparing its logits with the exporting torch
(`benchmarks/torch_compat.py`, run by hand because the old wheels are multi-GB CUDA builds). A new operator
must be checked the same way before it joins the list.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

# 2: score(mb, ma, observed, yaws, chunk) walks the yaw chunks itself, reusing the aerial spectrum
FORMAT = "translocnet-torchscript-2"
OLDEST_TORCH = "2.4.1"
MAX_FORMAT_VERSION = 10  # what torch.jit.save writes for this model on 2.4-2.13; 2.4 reads up to 10
METHODS = ("forward", "encode", "score")

ALLOWED_OPS = frozenset(
    [
        "aten::Int",
        "aten::__and__",
        "aten::__getitem__",
        "aten::__is__",
        "aten::_set_item",
        "aten::abs",
        "aten::add",
        "aten::add_",
        "aten::affine_grid_generator",
        "aten::all",
        "aten::append",
        "aten::arange",
        "aten::batch_norm",
        "aten::bincount",
        "aten::cat",
        "aten::ceil",
        "aten::chunk",
        "aten::clamp",
        "aten::clamp_min",
        "aten::conj",
        "aten::conv2d",
        "aten::copy_",
        "aten::cos",
        "aten::div",
        "aten::einsum",
        "aten::eq",
        "aten::exp",
        "aten::expand",
        "aten::expand_as",
        "aten::fft_irfft2",
        "aten::fft_rfft2",
        "aten::flatten",
        "aten::floor",
        "aten::floordiv",
        "aten::format",
        "aten::full",
        "aten::ge",
        "aten::gelu",
        "aten::grid_sampler",
        "aten::gt",
        "aten::index",
        "aten::isfinite",
        "aten::kthvalue",
        "aten::layer_norm",
        "aten::len",
        "aten::linear",
        "aten::log1p",
        "aten::lt",
        "aten::matmul",
        "aten::max_pool2d",
        "aten::mean",
        "aten::meshgrid",
        "aten::mul",
        "aten::neg",
        "aten::norm",
        "aten::pow",
        "aten::relu_",
        "aten::reshape",
        "aten::scatter_reduce",
        "aten::select",
        "aten::sin",
        "aten::size",
        "aten::slice",
        "aten::softmax",
        "aten::split",
        "aten::sqrt",
        "aten::stack",
        "aten::sub",
        "aten::sum",
        "aten::to",
        "aten::transpose",
        "aten::unsqueeze",
        "aten::upsample_bilinear2d",
        "aten::view",
        "aten::where",
        "aten::zeros",
        "aten::zeros_like",
        "prim::Constant",
        "prim::GetAttr",
        "prim::If",
        "prim::ListConstruct",
        "prim::ListUnpack",
        "prim::Loop",
        "prim::RaiseException",
        "prim::TupleConstruct",
        "prim::TupleUnpack",
        "prim::device",
        "prim::max",
        "prim::unchecked_cast",
    ]
)


def graph_ops(module: torch.jit.ScriptModule) -> set[str]:
    """Every node kind in the inlined graphs of the methods a localizer calls, nested blocks included."""
    ops: set[str] = set()

    def walk(block) -> None:
        for node in block.nodes():
            ops.add(node.kind())
            for inner in node.blocks():
                walk(inner)

    for name in METHODS:
        walk(getattr(module, name).inlined_graph)
    return ops


def format_version(path: Path) -> int:
    """The serialization format version recorded in a TorchScript archive."""
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith("/version") or n == "version")
        return int(z.read(name).decode().strip())


def portability_problems(path: Path) -> list[str]:
    """Why the file would not load on torch OLDEST_TORCH; empty when it should."""
    problems = []
    unknown = sorted(graph_ops(torch.jit.load(str(path), map_location="cpu")) - ALLOWED_OPS)
    if unknown:
        problems.append(f"operators not checked on torch {OLDEST_TORCH}: {', '.join(unknown)}")
    version = format_version(path)
    if version > MAX_FORMAT_VERSION:
        problems.append(f"serialization format {version} > {MAX_FORMAT_VERSION} (torch {OLDEST_TORCH})")
    return problems
