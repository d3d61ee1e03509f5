"""Keeps COMPATIBILITY.md, the official client's CLI and Tools/compat/official-client.sh in
agreement. Run with the official client's Python (it reads the client's command tree):

    compat_table.py check RESULTS     RESULTS: the "PASS name"/"FAIL name" lines of a run

Fails (exit 1), naming each problem, when
  - a command of the installed client has no row in the table, or a row names no command;
  - a row says "works", "not supported" or "client bug" and no check of this run named after it passed
    (a check is named after its command: "admin domain add" or "admin domain add (…)");
  - a check of this run is named after no row, or after a row that says "missing".
"""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATES = ("works", "not supported", "client bug", "missing")


def table_rows():
    rows = {}
    for line in (ROOT / "COMPATIBILITY.md").read_text().splitlines():
        m = re.match(r"^\|\s*`([^`]+)`\s*\|\s*([^|]+?)\s*\|", line)
        if not m:
            continue
        command, state = m.group(1), m.group(2)
        state = next((s for s in STATES if state.startswith(s)), state)
        if command in rows:
            sys.exit(f"COMPATIBILITY.md lists `{command}` twice")
        rows[command] = state
    return rows


def client_commands():
    out = subprocess.run([sys.executable, str(ROOT / "Tools/compat/cli_commands.py")], check=True, capture_output=True, text=True)
    return set(out.stdout.split("\n")) - {""}


def command_of(check, rows):
    """The row a check is named after: the longest command its name starts with."""
    best = None
    for command in rows:
        if check == command or check.startswith(command + " ("):
            if best is None or len(command) > len(best):
                best = command
    return best


def main():
    if len(sys.argv) != 3 or sys.argv[1] != "check":
        sys.exit(__doc__)
    rows = table_rows()
    problems = []
    for state in set(rows.values()) - set(STATES):
        problems.append(f"unknown state '{state}' (use one of {', '.join(STATES)})")
    commands = client_commands()
    for command in sorted(commands - rows.keys()):
        problems.append(f"`{command}` is a command of the client but has no row in COMPATIBILITY.md")
    for command in sorted(rows.keys() - commands):
        problems.append(f"COMPATIBILITY.md lists `{command}`, which the client does not have")
    passed, seen = set(), set()
    for line in Path(sys.argv[2]).read_text().splitlines():
        m = re.match(r"^(PASS|FAIL) ([^:]+)", line)
        if not m:
            continue
        name = m.group(2).strip()
        command = command_of(name, rows)
        if command is None:
            problems.append(f"check '{name}' is named after no row of COMPATIBILITY.md")
            continue
        seen.add(command)
        if rows[command] == "missing":
            problems.append(f"check '{name}' runs, but COMPATIBILITY.md says `{command}` is missing")
        if m.group(1) == "PASS":
            passed.add(command)
    for command, state in sorted(rows.items()):
        if state in ("works", "not supported", "client bug") and command not in passed:
            problems.append(f"COMPATIBILITY.md says `{command}` {state}, but no check named after it passed in this run")
    for p in problems:
        print("COMPAT TABLE:", p)
    counts = {s: sum(1 for v in rows.values() if v == s) for s in STATES}
    print(f"COMPATIBILITY.md: {len(rows)} commands: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
