"""Memory after a huge message (issue 9): the dynamic Fast DDS profile by default, and the heap trimmed."""

import subprocess
import sys
import xml.etree.ElementTree as ET

from translocnet_ros.ros.launch_args import dds_opt_out
from translocnet_ros.ros.memory import LARGE_MESSAGE_BYTES, dynamic_dds_memory_environment, is_large


def test_node_defaults_to_the_dynamic_history_memory_profile():
    env = dynamic_dds_memory_environment({})
    assert env["RMW_FASTRTPS_USE_QOS_FROM_XML"] == "1"
    root = ET.parse(env["FASTDDS_DEFAULT_PROFILES_FILE"]).getroot()
    assert {el.find("{*}historyMemoryPolicy").text for el in root if el.get("is_default_profile")} == {
        "DYNAMIC"
    }
    assert dynamic_dds_memory_environment({"RMW_IMPLEMENTATION": "rmw_fastrtps_cpp"}) == env


def test_users_fast_dds_choices_are_left_alone():
    assert dynamic_dds_memory_environment(dds_opt_out()) == {}  # launch argument dds_dynamic_memory:=false
    assert dynamic_dds_memory_environment({"FASTDDS_DEFAULT_PROFILES_FILE": "/mine.xml"}) == {}
    assert dynamic_dds_memory_environment({"RMW_FASTRTPS_USE_QOS_FROM_XML": "0"}) == {}
    assert dynamic_dds_memory_environment({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}) == {}


def test_only_huge_messages_trigger_a_heap_trim():
    class Msg:
        def __init__(self, n):
            self.data = bytes(n)

    assert not is_large(Msg(4 * 1024 * 1024))  # a 64-beam sweep
    assert is_large(Msg(LARGE_MESSAGE_BYTES))
    assert not is_large(object())


TRIM_PROBE = """
import os, sys
from translocnet_ros.ros.memory import release_heap

def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

big, kept = [], []
for _ in range(3000):  # 64 kB blocks from the heap, each pinned in place by a small block kept after it
    big.append(bytearray(64 * 1024))
    kept.append(bytearray(2048))
before = rss_mb()
del big
freed = rss_mb()
released = release_heap()
print(before, freed, rss_mb(), released)
"""


def test_release_heap_returns_memory_freed_inside_the_heap():
    out = subprocess.run([sys.executable, "-c", TRIM_PROBE], capture_output=True, text=True, check=True)
    before, freed, trimmed, released = out.stdout.split()
    before, freed, trimmed = float(before), float(freed), float(trimmed)
    # freeing alone leaves most of the ~190 MB resident (holes between the kept blocks); the trim returns it
    assert freed - trimmed > 100, (before, freed, trimmed)
    assert released == "True"
