"""era_s7/machine.py: the machine's facts a run's numbers depend on, read from a /proc/cpuinfo of the test's own."""
import torch

from era_s7 import machine

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC 9R14
stepping\t: 1
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16

processor\t: 1
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16
"""


def test_the_processor_and_its_bf16_units_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(CPUINFO)
    assert machine.cpu_flags(info) == ["fpu", "sse2", "avx2", "avx512f", "avx512_bf16"]
    found = machine.processor(info)
    assert (found["vendor"], found["family"], found["model"], found["stepping"]) == ("AuthenticAMD", "25", "17", "1")
    assert machine.native_bf16(info)
    assert machine.arithmetic("cpu", info).endswith(" +avx512_bf16")
    assert machine.arithmetic("cpu", info).split()[0] == torch.backends.cpu.get_cpu_capability()
    missing = tmp_path / "none"
    assert machine.cpu_flags(missing) == [] and machine.processor(missing) == {} and not machine.native_bf16(missing)


def test_a_runs_condition_is_what_its_record_states_and_old_records_read_as_fp32():
    here = machine.condition_of("cpu", 1, dict(bf16=True, channels_last=True))
    assert list(here) == list(machine.CONDITION_KEYS)
    assert here["threads"] == 1 and here["precision"] == "bf16" and here["memory_format"] == "channels_last"
    assert machine.run_condition(dict(here, seed=3)) == tuple(here.values())
    assert machine.run_condition(dict(device_name="cpu"))[3:] == ("fp32", "contiguous")  # before they were recorded


def test_the_device_and_threads():
    assert machine.select_device("cpu") == torch.device("cpu")
    threads = torch.get_num_threads()
    try:
        assert machine.usable_cores() and machine.set_threads(1) == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(threads)  # the other tests' threads
    assert "cpu" in machine.environment(torch.device("cpu")).lower()
