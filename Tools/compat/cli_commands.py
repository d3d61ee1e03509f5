"""Prints every command of the installed official Backend.AI client's CLI, one per line
(e.g. "admin domain add"), by walking its click tree. Run with the client's Python:
    ~/.cache/hangar/backendai-client-23.9.10/bin/python Tools/compat/cli_commands.py
"""
import click
from ai.backend.cli.__main__ import main


def walk(command, path):
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            if getattr(sub, "hidden", False):
                continue
            yield from walk(sub, path + [name])
    elif path:
        yield " ".join(path)


for line in walk(main, []):
    print(line)
