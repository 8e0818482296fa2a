"""`translocnet` command line: one entry point, one sub-command per job (data, eval, train, replay, demo)."""

from __future__ import annotations

import argparse
import importlib
import sys

# sub-command -> module with add_arguments(parser) and run(args) -> int; imported lazily so that
# `translocnet --help` stays fast and a job only loads what it needs.
COMMANDS = {
    "generate": (
        "translocnet_ros.synth.cli",
        "generate synthetic towns with orthophotos and KITTI-layout drives",
    ),
    "eval": ("translocnet_ros.evaluation.cli", "score a method on a drive with the DESIGN.md §6 protocol"),
    "train": ("translocnet_ros.model.train", "train TransLocNet on the synthetic train split"),
    "calibrate": (
        "translocnet_ros.evaluation.calibrate_cli",
        "fit a method's likelihood temperature on the val towns (honest covariances)",
    ),
    "adapt": (
        "translocnet_ros.model.adapt",
        "adapt a model to an area from its orthophoto and unlabeled scans (no poses read)",
    ),
    "export": ("translocnet_ros.model.export", "export a checkpoint to TorchScript + metadata in models/"),
    "demo": ("translocnet_ros.ros.demo", "node + replay of a synthetic drive as ROS 2 processes, scored"),
    "replay": ("translocnet_ros.ros.replay", "publish a bag or a KITTI-layout drive on ROS 2 topics"),
    "view": ("translocnet_ros.evaluation.view_cli", "draw a scan over the orthophoto at its true pose"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="translocnet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_)
        p.set_defaults(_module=module)
        if name in argv[:1]:  # only the chosen command's module is imported
            importlib.import_module(module).add_arguments(p)
    args = parser.parse_args(argv)
    return int(importlib.import_module(args._module).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
