"""Keeps COMPATIBILITY.md, the official client's CLI and Tools/compat/official-client.sh in
agreement. Run with the official client's Python (it reads the client's command tree):

    compat_table.py check RESULTS     RESULTS: the "PASS name"/"FAIL name" lines of a run

Fails (exit 1), naming each problem, when
  - a command of the installed client has no row in the table, or a row names no command;
  - a row says "works", "not supported" or "client bug" and no check of this run named after it passed
    (a check is named after its command: "admin domain add" or "admin domain add (…)");
  - a check of this run is named after no row, or after a row that says "missing";
  - a GraphQL root or mutation the client's sources use (Tools/compat/gql_roots.py) has no row in
    the table's GraphQL section, or a row names one the client does not use;
  - a GraphQL row says "works" and the running Hangar's schema (introspected with the client's
    keys from the environment) lacks it, or says "not supported" and querying it does not answer
    "not supported by Hangar".
"""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATES = ("works", "not supported", "client bug", "missing")


GRAPHQL_HEADING = "## GraphQL roots and mutations"


def table_rows(graphql=False):
    """The command rows (before the GraphQL section), or the GraphQL rows (after its heading)."""
    rows = {}
    text = (ROOT / "COMPATIBILITY.md").read_text()
    before, _, after = text.partition(GRAPHQL_HEADING)
    for line in (after if graphql else before).splitlines():
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


def graphql_problems():
    """What the GraphQL section and the client's sources and Hangar's schema disagree on."""
    problems = []
    rows = table_rows(graphql=True)
    out = subprocess.run([sys.executable, str(ROOT / "Tools/compat/gql_roots.py")], check=True, capture_output=True, text=True)
    used = {line.split("\t")[0] for line in out.stdout.splitlines() if line}
    for root in sorted(used - rows.keys()):
        problems.append(f"the client uses GraphQL `{root}`, which has no row in COMPATIBILITY.md's GraphQL section")
    for root in sorted(rows.keys() - used):
        problems.append(f"COMPATIBILITY.md's GraphQL section lists `{root}`, which the client does not use")
    from ai.backend.client.exceptions import BackendAPIError
    from ai.backend.client.session import Session
    with Session() as session:
        schema = session.Admin.query("{ __schema { queryType { fields { name } } mutationType { fields { name } } } }")["__schema"]
        present = {f"query {f['name']}" for f in schema["queryType"]["fields"]}
        present |= {f"mutation {f['name']}" for f in (schema.get("mutationType") or {}).get("fields", [])}
        for root, state in sorted(rows.items()):
            if state == "works" and root not in present:
                problems.append(f"COMPATIBILITY.md says GraphQL `{root}` works, but Hangar's schema has no such field")
            if state == "not supported" and root.startswith("query "):
                try:
                    session.Admin.query("{ %s { __typename } }" % root.split(" ", 1)[1])
                    answer = "an answer"
                except BackendAPIError as error:
                    answer = str(error)
                except Exception as error:  # noqa: BLE001 - any refusal is reported
                    answer = str(error)
                if "not supported by Hangar" not in answer:
                    problems.append(f"COMPATIBILITY.md says GraphQL `{root}` is not supported, but Hangar answered: {answer[:200]}")
    return problems, rows


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
    graphql, graphql_rows = graphql_problems()
    problems += graphql
    for p in problems:
        print("COMPAT TABLE:", p)
    counts = {s: sum(1 for v in rows.values() if v == s) for s in STATES}
    print(f"COMPATIBILITY.md: {len(rows)} commands: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    counts = {s: sum(1 for v in graphql_rows.values() if v == s) for s in STATES}
    print(f"COMPATIBILITY.md: {len(graphql_rows)} GraphQL roots and mutations: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
