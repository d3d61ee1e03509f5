"""The GraphQL roots and mutations the installed official client uses, one per line as
"query NAME" or "mutation NAME", each with the client modules that send it:

    gql_roots.py            query users<TAB>func/user.py

Run with the official client's Python. Read from the client's sources (ai/backend/client/func
and cli): every GraphQL document in a string literal (its first-level fields) and every root
handed to the paginated-query helper (fetch_paginated_result("compute_session_list", ...)).
"""
import ast
import re
import sys
from collections import defaultdict
from pathlib import Path

import ai.backend.client as client

ROOT = Path(client.__file__).parent
OPERATION = re.compile(r"^\s*(query|mutation)\b[^{}]*\{", re.S)


def first_level_fields(document):
    """The operation match and the field names at depth 1 of a GraphQL document."""
    match = OPERATION.match(document)
    if not match:
        return None, []
    body = document[match.end():]
    depth, names, i = 1, [], 0
    while i < len(body) and depth:
        c = body[i]
        if c == "{":
            depth += 1
            i += 1
        elif c == "}":
            depth -= 1
            i += 1
        elif c == "(":
            # Arguments may hold braces (input objects): skipped whole.
            level, i = 1, i + 1
            while i < len(body) and level:
                level += {"(": 1, ")": -1}.get(body[i], 0)
                i += 1
        elif c == "$":
            i += 1
            while i < len(body) and (body[i].isalnum() or body[i] == "_"):
                i += 1
        elif (c.isalpha() or c == "_") and depth == 1:
            j = i
            while j < len(body) and (body[j].isalnum() or body[j] == "_"):
                j += 1
            name, i = body[i:j], j
            k = i
            while k < len(body) and body[k] in " \t\r\n":
                k += 1
            if k < len(body) and body[k] == ":":
                i = k + 1  # an alias: the field's own name follows
                continue
            if name not in names:
                names.append(name)
        else:
            i += 1
    return match, names


def main():
    uses = defaultdict(set)
    for path in sorted(list((ROOT / "func").glob("*.py")) + list((ROOT / "cli").rglob("*.py"))):
        relative = str(path.relative_to(ROOT))
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            # A document may be split over several literals of one statement ("mutation(...) {"
            # + "  create_keypair(...)", some through str.format with doubled braces).
            if isinstance(node, (ast.Assign, ast.AnnAssign, ast.Expr, ast.Return)) and node.value is not None:
                parts = sorted((n.lineno, n.col_offset, n.value) for n in ast.walk(node.value)
                               if isinstance(n, ast.Constant) and isinstance(n.value, str))
                text = "".join(p[2] for p in parts)
                if any(isinstance(n, ast.Attribute) and n.attr == "format" for n in ast.walk(node.value)):
                    text = re.sub(r"(?<!\{)\{\w*\}(?!\})", "_", text).replace("{{", "{").replace("}}", "}")
                for start in re.finditer(r"\b(query|mutation)\b[^{}]*\{", text):
                    match, names = first_level_fields(text[start.start():])
                    if match:
                        for name in names:
                            uses[(match.group(1), name)].add(relative)
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in ("fetch_paginated_result", "execute_paginated_query"):
                if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                    uses[("query", node.args[0].value)].add(relative)
    for (kind, name), files in sorted(uses.items()):
        print(f"{kind} {name}\t{', '.join(sorted(files))}")


if __name__ == "__main__":
    sys.exit(main())
