"""keep_large_buffers: a large block freed and allocated again is not page-faulted in anew; who calls it."""

import os
import subprocess
import sys

import pytest

from so3k_driver.evaluation.host_memory import huge_pages_available

# Allocates, fills and frees a 40 MiB block (above glibc's 32 MiB dynamic mmap cap) ten times with the C
# library's malloc and prints the minor page faults per round.
PROBE = r"""
import ctypes, ctypes.util, resource, sys
if sys.argv[1] == "keep":
    from so3k_driver.evaluation.host_memory import keep_large_buffers
    assert keep_large_buffers()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = (ctypes.c_void_p,)
size = 40 << 20
block = libc.malloc(size); ctypes.memset(block, 1, size); libc.free(block)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    block = libc.malloc(size); ctypes.memset(block, 1, size); libc.free(block)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


# The same in a worker thread whose arena's first heap is partly in use (24 MiB held): a 48 MiB block then
# comes from a second heap, which glibc deletes when it is wholly free unless the top pad keeps it. The i-PI
# process of a study calls the model from such a thread.
THREAD_PROBE = r"""
import ctypes, ctypes.util, resource, sys, threading
from so3k_driver.evaluation.host_memory import keep_large_buffers
assert keep_large_buffers()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
faults = []
def work():
    held = libc.malloc(24 << 20); ctypes.memset(held, 1, 24 << 20)
    size = 48 << 20
    block = libc.malloc(size); ctypes.memset(block, 1, size); libc.free(block)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        block = libc.malloc(size); ctypes.memset(block, 1, size); libc.free(block)
    faults.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
    libc.free(held)
thread = threading.Thread(target=work); thread.start(); thread.join()
print(faults[0])
"""


def faults_per_round(mode: str, **environment) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    env.update(environment)
    probe = THREAD_PROBE if mode == "keep-thread" else PROBE
    result = subprocess.run([sys.executable, "-c", probe, mode], capture_output=True, text=True, env=env, check=True)
    return float(result.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_scratch_is_reused_instead_of_faulted_in_again():
    pages = (40 << 20) // 4096
    assert faults_per_round("default") > 0.5 * pages  # glibc mmaps and unmaps the block every round
    assert faults_per_round("keep") < 0.01 * pages


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_worker_threads_second_heap_is_kept_when_wholly_free():
    assert faults_per_round("keep-thread") < 0.01 * (48 << 20) // 4096  # 12 288 per round without the top pad


def test_switched_off_or_user_settings_change_nothing(monkeypatch):
    from so3k_driver.evaluation import host_memory

    for setting in ({"SO3K_HOST_MEMORY": "0"}, {"MALLOC_MMAP_THRESHOLD_": "65536"}):
        monkeypatch.setattr(host_memory, "_applied", None)
        for name, value in setting.items():
            monkeypatch.setenv(name, value)
        assert host_memory.keep_large_buffers() is False
        for name in setting:
            monkeypatch.delenv(name)
    monkeypatch.setattr(host_memory, "_applied", None)  # the next caller decides afresh


@pytest.mark.shared  # so3krates_random
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_cpu_potential_keeps_freed_scratch_unless_switched_off():
    """Building a Potential on a CPU raises the thresholds (library and ASE users get it too), at run time."""
    from conftest import SO3KRATES_RANDOM

    check = ("import sys; from so3k_driver.evaluation import host_memory; assert host_memory._applied is None; "
             "from so3k_driver.evaluation.potential import Potential; Potential.load(sys.argv[1]); "
             "print(host_memory._applied)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    for switch, expected in (("", "True"), ("0", "False")):
        env["SO3K_HOST_MEMORY"] = switch
        result = subprocess.run([sys.executable, "-c", check, SO3KRATES_RANDOM], capture_output=True, text=True,
                                env=env, check=True)
        assert result.stdout.split()[-1] == expected


def test_processes_that_run_the_model_start_with_huge_pages_unless_switched_off_or_set_by_the_user():
    from so3k_driver.evaluation.host_memory import HUGE_PAGE_TUNABLES, child_environment
    from so3k_driver.ipi.run_setup import ipi_environment

    plain = {"PATH": "/usr/bin"}
    assert child_environment(plain) == {**plain, "GLIBC_TUNABLES": HUGE_PAGE_TUNABLES} and plain == {"PATH": "/usr/bin"}
    assert ipi_environment(plain)["GLIBC_TUNABLES"] == HUGE_PAGE_TUNABLES
    for own in ({"SO3K_HOST_MEMORY": "off"}, {"MALLOC_TOP_PAD_": "0"}, {"GLIBC_TUNABLES": "glibc.malloc.arena_max=1"}):
        assert child_environment({**plain, **own}) == {**plain, **own}
    # started with our tunables, a process still raises its thresholds itself (they are not the user's)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "SO3K_HOST_MEMORY"}
    env["GLIBC_TUNABLES"] = HUGE_PAGE_TUNABLES
    check = "from so3k_driver.evaluation.host_memory import keep_large_buffers; print(keep_large_buffers())"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.split()[-1] == "True"


def test_huge_pages_are_available_only_where_glibc_and_the_kernel_give_them(tmp_path):
    import platform

    from so3k_driver.evaluation.host_memory import HUGE_PAGE_GLIBC, huge_pages_available

    setting = tmp_path / "enabled"
    assert not huge_pages_available(str(setting))  # no such file: not Linux, or no THP in this kernel
    setting.write_text("always madvise [never]\n")
    assert not huge_pages_available(str(setting))
    name, version = platform.libc_ver()
    glibc_knows_them = name == "glibc" and tuple(int(p) for p in version.split(".")[:2]) >= HUGE_PAGE_GLIBC
    for mode in ("always [madvise] never\n", "[always] madvise never\n"):
        setting.write_text(mode)
        assert huge_pages_available(str(setting)) == glibc_knows_them


# A 72 MiB block (SO3LR's scratch for one compact Ac-Ala15-NHMe) in a worker thread: beyond a thread heap's
# 64 MiB, so glibc maps it afresh every round whatever the thresholds.
BIG_BLOCK_PROBE = THREAD_PROBE.replace("24 << 20", "1 << 20").replace("48 << 20", "72 << 20")


@pytest.mark.skipif(not sys.platform.startswith("linux") or not huge_pages_available(),
                    reason="transparent huge pages through glibc >= 2.35 (glibc.malloc.hugetlb)")
def test_a_block_beyond_a_thread_heap_is_faulted_in_by_huge_pages():
    from so3k_driver.evaluation.host_memory import child_environment

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    env.pop("SO3K_HOST_MEMORY", None)
    rounds = []
    for environment in (env, child_environment(env)):
        result = subprocess.run([sys.executable, "-c", BIG_BLOCK_PROBE], capture_output=True, text=True,
                                env=environment, check=True)
        rounds.append(float(result.stdout.split()[-1]))
    pages = (72 << 20) // 4096
    assert rounds[0] > 0.5 * pages  # 18 432 small pages every round: the thresholds cannot keep it
    assert rounds[1] < 0.05 * pages  # 2 MiB pages: 36 faults for the block where the kernel can give them


@pytest.fixture
def no_malloc_settings(monkeypatch):
    """This process's environment without glibc's malloc variables, GLIBC_TUNABLES or SO3K_HOST_MEMORY."""
    for name in [k for k in os.environ if k.startswith("MALLOC_")] + ["GLIBC_TUNABLES", "SO3K_HOST_MEMORY"]:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.skipif(not huge_pages_available(), reason="transparent huge pages through glibc >= 2.35")
def test_a_process_without_huge_pages_is_told_once_when_a_call_outgrows_a_thread_heap(monkeypatch, caplog,
                                                                                     no_malloc_settings):
    from so3k_driver.evaluation import host_memory

    monkeypatch.setattr(host_memory, "_decided", False)
    with caplog.at_level("WARNING", logger="so3k"):
        host_memory.warn_if_beyond_thread_heap(48 << 20)  # fits: nothing to say
        assert not caplog.records
        host_memory.warn_if_beyond_thread_heap(75 << 20)
        host_memory.warn_if_beyond_thread_heap(90 << 20)  # once is enough
    assert len(caplog.records) == 1 and "about 75 MiB" in caplog.records[0].getMessage()
    assert "GLIBC_TUNABLES=glibc.malloc.hugetlb=1" in caplog.records[0].getMessage()
    caplog.clear()
    for own in ({"GLIBC_TUNABLES": host_memory.HUGE_PAGE_TUNABLES}, {"SO3K_HOST_MEMORY": "0"}):
        monkeypatch.setattr(host_memory, "_decided", False)
        with monkeypatch.context() as patched, caplog.at_level("WARNING", logger="so3k"):
            for name, value in own.items():
                patched.setenv(name, value)
            host_memory.warn_if_beyond_thread_heap(75 << 20)
    assert not caplog.records  # started with huge pages, or told to leave glibc alone


@pytest.mark.shared  # so3krates_random
@pytest.mark.skipif(not huge_pages_available(), reason="transparent huge pages through glibc >= 2.35")
def test_a_cpu_potential_checks_each_calls_scratch_against_a_thread_heap(monkeypatch, caplog, no_malloc_settings):
    """The Potential passes its scratch estimate on: with the heap limit lowered to 1 byte, any call warns."""
    from conftest import SO3KRATES_RANDOM

    from so3k_driver.evaluation import host_memory
    from so3k_driver.evaluation.potential import Potential
    from so3k_driver.sampling.plumed_inputs import bundled_structure

    import ase.io

    monkeypatch.setattr(host_memory, "_decided", False)
    monkeypatch.setattr(host_memory, "THREAD_HEAP_BYTES", 1)
    atoms = ase.io.read(bundled_structure("Ac-Ala3-NHMe_ext.xyz"))
    potential = Potential.load(SO3KRATES_RANDOM)
    with caplog.at_level("WARNING", logger="so3k"):
        potential.evaluate(atoms.numbers, atoms.positions)
    assert len(caplog.records) == 1 and "MiB of scratch" in caplog.records[0].getMessage()
