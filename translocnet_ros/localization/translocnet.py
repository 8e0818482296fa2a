"""TransLocNet inference from its TorchScript file: the localizer the node, eval and benchmarks share."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from translocnet_ros.geo.pose import Pose2D
from translocnet_ros.imagery.patch import equalize
from translocnet_ros.localization.decode import VolumeLocalizer, WrongMatchCurve
from translocnet_ros.localization.ncc_evidence import NccEvidence
from translocnet_ros.localization.threads import limit_blas_threads
from translocnet_ros.localization.types import (
    MIN_SCAN_POINTS,
    ImagerySource,
    LocalizationError,
    ScoreVolume,
    SearchWindow,
)
from translocnet_ros.model.compat import FORMAT
from translocnet_ros.model.config import ModelConfig
from translocnet_ros.model.views import VIEWS, WorldTurn


def default_model_path() -> Path:
    """models/translocnet.pt of the installed package (share/translocnet_ros) when ROS knows the package, else
    of the source tree (the engine used from plain Python, with no ROS installed)."""
    source_tree = Path(__file__).resolve().parents[2] / "models" / "translocnet.pt"
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return source_tree
    try:
        installed = Path(get_package_share_directory("translocnet_ros")) / "models" / "translocnet.pt"
    except (PackageNotFoundError, ValueError):
        return source_tree
    return installed if installed.is_file() else source_tree


DEFAULT_MODEL = default_model_path()


class ModelLoadError(RuntimeError):
    """The model file or its metadata is missing, corrupt or does not match this code."""


def load_model(path: str | Path, device: torch.device):
    """TorchScript module + ModelConfig, after checking the metadata and the file's sha256."""
    path = Path(path)
    meta_path = path.with_suffix(".json")
    if not path.is_file() or not meta_path.is_file():
        raise ModelLoadError(f"model {path} or its metadata {meta_path.name} not found")
    try:
        meta = json.loads(meta_path.read_text())
        cfg = ModelConfig(**meta["model"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"{meta_path}: unreadable metadata ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise ModelLoadError(
            f"{meta_path}: format {meta.get('format')!r}, expected {FORMAT!r} (re-export it: translocnet export)"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != meta.get("sha256"):
        raise ModelLoadError(f"{path}: sha256 {digest[:12]}... does not match its metadata")
    try:
        module = torch.jit.load(str(path), map_location=device)
    except RuntimeError as exc:
        raise ModelLoadError(f"{path}: not a loadable TorchScript file ({exc})") from exc
    module.eval()
    return module, cfg, meta


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device 'cuda' requested but CUDA is not available")
    return torch.device(name)


class TransLocNetLocalizer(VolumeLocalizer):
    name = "translocnet"

    def __init__(
        self,
        model_path: str | Path = DEFAULT_MODEL,
        device: str = "auto",
        yaw_step_deg: float = 1.0,
        wide_yaw_step_deg: float = 2.5,
        yaw_chunk: int | None = None,
        views: int | None = None,
        ncc_weight: float | None = None,
    ):
        limit_blas_threads()
        self.torch_device = resolve_device(device)
        self.device = self.torch_device.type
        self.model_path = Path(model_path)
        self.module, self.cfg, self.meta = load_model(model_path, self.torch_device)
        # fitted on the val towns by `translocnet calibrate`; 1 = the training NLL's own scale
        calibration = self.meta.get("calibration", {})
        self.temperature = float(calibration.get("temperature", 1.0))
        self.covariance_scale = float(calibration.get("covariance_scale", 1.0))
        # P(wrong match | confidence): how much of the search window's spread the covariance takes in
        # (decode.honest_covariance); absent in metadata calibrated before it: none
        self.wrong_match = WrongMatchCurve.from_dict(calibration.get("wrong_match"))
        # factors on the temporal filter's posterior position and yaw variances (filter.BayesFilter), fitted on
        # the val drives; metadata before the yaw factor had one factor for both
        self.filter_covariance_scale = float(calibration.get("filter_covariance_scale", 1.0))
        self.filter_yaw_scale = float(calibration.get("filter_yaw_scale", self.filter_covariance_scale))
        # softmax volumes with a temperature fitted on val: a peak far above the belief is evidence to relocate
        self.calibrated_volumes = True
        # `adapt --equalize`: the area's patches are histogram-equalized before the network
        self.equalize = bool(self.meta.get("adapted", {}).get("equalize", False))
        # test-time views of the same problem (the world turned / mirrored about the prior), their volumes
        # averaged: chosen and calibrated with the model (`translocnet calibrate --views`), 1 before that
        n_views = views or int(self.meta.get("inference", {}).get("views", 1))
        if n_views not in VIEWS:
            raise ValueError(f"views must be one of {sorted(VIEWS)}, got {n_views}")
        self.views = VIEWS[n_views]
        # the classic edge matcher's log-likelihood added to the logits with this weight (ncc_evidence.py):
        # chosen and calibrated with the model (`translocnet calibrate --ncc-weight`), none before that
        weight = self.meta.get("inference", {}).get("ncc_weight", 0.0) if ncc_weight is None else ncc_weight
        if weight < 0:
            raise ValueError(f"ncc_weight must be >= 0, got {weight}")
        self.ncc = NccEvidence(weight) if weight > 0 else None
        self.yaw_step = np.radians(yaw_step_deg)
        self.wide_yaw_step = np.radians(wide_yaw_step_deg)
        # yaw hypotheses scored per batch: all at once on a GPU (one launch sequence, memory is plentiful),
        # a cache-sized chunk on the CPU
        self.yaw_chunk = yaw_chunk or (
            len(self.yaw_offsets(SearchWindow(1.0, np.pi))) if self.device == "cuda" else 24
        )
        self._warm_up()

    @torch.no_grad()
    def _warm_up(self, runs: int = 2) -> None:
        """TorchScript optimizes a graph during its first calls: pay that at start-up, not on the first scans."""
        dev, cfg = self.torch_device, self.cfg
        size = cfg.aerial_px(SearchWindow().radius_m)
        points = torch.rand(2000, 4, device=dev) * torch.tensor([40.0, 40.0, 3.0, 1.0], device=dev) - 0.5
        aerial = torch.zeros(3, size, size, dtype=torch.uint8, device=dev)
        for _ in range(runs):
            mb, ma, observed = self.module.encode(points, aerial)
            for n in {len(self.yaw_offsets(SearchWindow())), len(self.yaw_offsets(SearchWindow(1.0, np.pi)))}:
                self.module.score(mb, ma, observed, torch.zeros(n, device=dev), self.yaw_chunk)

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        """On CUDA through pinned memory, asynchronously: the copy overlaps the host work that follows."""
        t = torch.from_numpy(array)
        if self.device != "cuda":
            return t
        return t.pin_memory().to(self.torch_device, non_blocking=True)

    def yaw_offsets(self, window: SearchWindow) -> np.ndarray:
        if window.yaw_range_rad >= np.pi - 1e-6:
            return np.arange(-np.pi, np.pi, self.wide_yaw_step)
        return window.yaw_offsets(self.yaw_step)

    @torch.no_grad()
    def score_volume(
        self, scan: np.ndarray, imagery: ImagerySource, prior: Pose2D, window: SearchWindow
    ) -> ScoreVolume:
        if len(scan) < MIN_SCAN_POINTS:
            raise LocalizationError(f"scan has {len(scan)} points, need at least {MIN_SCAN_POINTS}")
        cfg = self.cfg
        patch = imagery.patch(prior.x, prior.y, cfg.aerial_m(window.radius_m), cfg.m_per_px)
        if patch.valid.mean() < 0.5:
            raise LocalizationError(f"prior is outside the imagery ({patch.reason})")
        if self.equalize:
            patch = equalize(patch)
        offsets = self.yaw_offsets(window)
        scan = np.ascontiguousarray(scan, dtype=np.float32)
        views = torch.stack(
            [self._view_volume(v, scan, patch.image, prior.yaw + offsets) for v in self.views]
        )
        per_view = views.cpu().numpy()  # the one host sync of a scan
        volume = per_view.mean(0).astype(np.float64)
        if self.ncc is not None:
            # NCC's evidence moves the pose; the confidence stays the mass the model's own views put near it
            # (view_logits without the term: one shared reading added to every view would make them agree)
            term = self.ncc.logits(scan, imagery, prior, window, offsets, volume.shape, cfg.out_m_per_px)
            if term is not None:
                volume += term
        return ScoreVolume(
            volume,
            prior,
            offsets,
            cfg.out_m_per_px,
            (volume.shape[-1] - 1) / 2,
            view_logits=per_view if len(per_view) > 1 else None,
        )

    def _view_volume(
        self, view: WorldTurn, scan: np.ndarray, image: np.ndarray, yaws: np.ndarray
    ) -> torch.Tensor:
        """The volume of one view, scored in the turned world and turned back onto the prior's grid."""
        points = self._to_device(view.scan(scan))
        aerial = self._to_device(np.ascontiguousarray(view.image(image).transpose(2, 0, 1)))
        mb, ma, observed = self.module.encode(points, aerial)
        turned_yaws = torch.from_numpy(view.yaw(yaws).astype(np.float32)).to(self.torch_device)
        logits = self.module.score(mb, ma, observed, turned_yaws, self.yaw_chunk)
        logits = torch.rot90(logits, -view.quarter, dims=(1, 2))
        return logits.flip(1) if view.mirror else logits
