"""The command line is a client of the library: it uses public names only."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import begateway_async as bga
import begateway_async.cli

CLI = Path(begateway_async.cli.__file__).parent
#: The library's public modules.
PUBLIC = {"begateway_async", "begateway_async.testing", "begateway_async.webhooks"}


def private_uses(source: str) -> list[str]:
    """Every private module or name of the library that ``source`` reaches for."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # the cli package's own modules only
                if node.level > 1:
                    found.append(f"line {node.lineno}: from {'.' * node.level}{node.module or ''}")
                continue
            module = node.module or ""
            if module.split(".")[0] != "begateway_async":
                continue
            if module not in PUBLIC:
                found.append(f"line {node.lineno}: module {module}")
            found += [f"line {node.lineno}: {a.name}" for a in node.names if a.name[0] == "_"]
        elif isinstance(node, ast.Import):
            found += [
                f"line {node.lineno}: module {a.name}"
                for a in node.names
                if a.name.split(".")[0] == "begateway_async" and a.name not in PUBLIC
            ]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            own = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            if not own and not (node.attr.startswith("__") and node.attr.endswith("__")):
                found.append(f"line {node.lineno}: .{node.attr}")
    return found


def test_the_checker_finds_private_uses():
    """The check itself sees each way of reaching inside the library."""
    source = (
        "from begateway_async._client import Gateway\n"
        "from begateway_async import _protocol\n"
        "import begateway_async._jobs\n"
        "from .. import _errors\n"
        "job = gw._replay(entry)\n"
    )
    assert len(private_uses(source)) == 5
    assert private_uses("import begateway_async as bga\nself._tty = bga.Gateway\n") == []


def test_the_command_line_imports_no_private_name():
    """Every module of cli/ uses only begateway_async, .testing and .webhooks, by public names."""
    modules = sorted(CLI.glob("*.py"))
    assert len(modules) >= 5
    for path in modules:
        assert private_uses(path.read_text(encoding="utf-8")) == [], path.name


def test_the_command_says_its_version():
    """``begateway-async --version`` prints the package version and exits 0."""
    out = subprocess.run(
        [sys.executable, "-m", "begateway_async", "--version"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0
    assert out.stdout.strip() == f"begateway-async {bga.__version__}"
