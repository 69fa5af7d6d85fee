"""Test-run summary: say plainly which simulators ran the cocotb benches and how they did."""

from collections import Counter

SIMS = ("verilator", "icarus")


def pytest_terminal_summary(terminalreporter):
    tally = {}
    for status in ("passed", "failed", "error"):
        for rep in terminalreporter.stats.get(status, []):
            nodeid = getattr(rep, "nodeid", "")
            if "_cocotb.py::" not in nodeid or "[" not in nodeid:
                continue
            params = nodeid.rsplit("[", 1)[1].rstrip("]").split("-")
            sim = next((p for p in params if p in SIMS), None)
            if sim is None:
                continue
            bench = nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py")
            tally.setdefault(bench.removeprefix("test_"), Counter())[(sim, status)] += 1
    for bench, counts in sorted(tally.items()):
        line = ", ".join(f"{sim} {n} {status}" for (sim, status), n in sorted(counts.items()))
        terminalreporter.write_line(f"cocotb {bench}: {line}")
