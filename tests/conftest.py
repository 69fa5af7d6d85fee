"""Test-run summary: say plainly which simulators ran the cocotb benches and how they did."""


def pytest_terminal_summary(terminalreporter):
    outcomes = {}
    for status in ("passed", "failed", "error"):
        for rep in terminalreporter.stats.get(status, []):
            if getattr(rep, "when", "call") != "call" and status == "passed":
                continue
            nodeid = rep.nodeid
            if "_cocotb.py::" in nodeid and "[" in nodeid:
                sim = nodeid.rsplit("[", 1)[1].rstrip("]")
                bench = nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py")
                outcomes.setdefault(bench, {})[sim] = status
    for bench, sims in sorted(outcomes.items()):
        line = ", ".join(f"{sim} {st}" for sim, st in sorted(sims.items()))
        terminalreporter.write_line(f"{bench.removeprefix('test_')}: {line}")
