"""Memory after a huge message (issue 9): the node's resident size must come back after a 10-million-point cloud.

Two things keep it high otherwise (python benchmarks/node_memory.py measures both):
- rmw_fastrtps' default history memory (PREALLOCATED_WITH_REALLOC) keeps every receive buffer at the size of
  the largest message ever received (about 150 MB after such a cloud, in a bare rclpy subscriber too); the node
  therefore runs with the DYNAMIC policy of config/fastdds_dynamic_memory.xml unless the user configured Fast
  DDS otherwise (use_dynamic_dds_memory);
- glibc keeps memory freed by the node itself in its arenas (about 20 MB after such a cloud); malloc_trim(0)
  after a message above LARGE_MESSAGE_BYTES gives it back (release_heap), so normal scans pay nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Mapping
from pathlib import Path

PROFILE = "config/fastdds_dynamic_memory.xml"
LARGE_MESSAGE_BYTES = 64 * 1024 * 1024  # a 64-beam sweep is 2-4 MB; 10 million points are 160 MB


@functools.cache
def _malloc_trim():
    """glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def is_large(msg) -> bool:
    """Whether a message's payload is large enough to be worth trimming the heap after it."""
    return len(getattr(msg, "data", b"")) >= LARGE_MESSAGE_BYTES


def release_heap() -> bool:
    """Return freed heap pages to the OS; whether glibc released anything (False where unsupported)."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


OPT_OUT = "TRANSLOCNET_DDS_DYNAMIC_MEMORY"  # "false" (launch_args.dds_opt_out): keep rmw_fastrtps' own history memory policy
_FASTRTPS = ("rmw_fastrtps_cpp", "rmw_fastrtps_dynamic_cpp")


def _share() -> str:
    """The folder whose config/ holds fastdds_dynamic_memory.xml: the installed package's share directory, else
    the source tree."""
    source_tree = Path(__file__).resolve().parents[2]
    try:
        from ament_index_python.packages import get_package_share_directory

        share = Path(get_package_share_directory("translocnet_ros"))
    except Exception:  # no ament index (plain Python) or the package is not installed
        return str(source_tree)
    return str(share if (share / PROFILE).is_file() else source_tree)


def dynamic_dds_memory_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables that make rmw_fastrtps allocate history buffers per message and free them after it
    (config/fastdds_dynamic_memory.xml), so a huge cloud does not keep the node that much larger for good.
    Empty when the user chose otherwise: the opt-out variable set to false, their own Fast DDS XML profile or
    XML QoS switch, or another RMW implementation."""
    if environ.get(OPT_OUT, "true").strip().lower() in ("0", "false", "no", "off"):
        return {}
    if "FASTDDS_DEFAULT_PROFILES_FILE" in environ or "RMW_FASTRTPS_USE_QOS_FROM_XML" in environ:
        return {}
    if environ.get("RMW_IMPLEMENTATION", _FASTRTPS[0]) not in _FASTRTPS:
        return {}
    from translocnet_ros.ros.launch_args import dds_environment

    return dds_environment(_share())


def use_dynamic_dds_memory() -> dict[str, str]:
    """Apply dynamic_dds_memory_environment() to this process; call before rclpy.init (Fast DDS reads them when
    it creates the participant). Returns what was set."""
    env = dynamic_dds_memory_environment(os.environ)
    os.environ.update(env)
    return env
