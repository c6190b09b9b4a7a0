"""Size limits of the house (CONTRIBUTING.md): modules, functions, parameters.

Read from the source with ``ast``; every violation in ``streamgru/`` is listed in one failure
message, so a newcomer sees the whole debt at once.

* a module has at most :data:`MAX_MODULE_LINES` lines;
* a function (method, nested function) spans at most :data:`MAX_FUNCTION_LINES` lines, from its
  ``def`` to its last line, decorators excluded;
* a function takes at most :data:`MAX_PARAMETERS` parameters (``self`` / ``cls`` and ``*args`` /
  ``**kwargs`` not counted): more than that is a settings dataclass waiting to be written.

Exceptions: the argument-parsing functions of ``streamgru/cli.py`` (``build_parser`` and the
``_add_<command>`` functions), and the entries of :data:`ALLOWED_PARAMETERS`: compiled entry
points whose parameters are arrays handed over as they are (a kernel cannot take a settings
object). Every allowlist entry must still be needed, so the list cannot rot.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "streamgru"

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
MAX_PARAMETERS = 8

#: (module relative to streamgru/, function name) -> why its parameter list may be longer.
ALLOWED_PARAMETERS: dict[tuple[str, str], str] = {
    ("kernels/cstep.py", "step_plain"): (
        "numba cfunc with a fixed C ABI (the C extension calls it through a function pointer): "
        "ten raw pointers and counts, no Python object can cross"
    ),
    ("kernels/cstep.py", "step_conditioned"): (
        "numba cfunc with a fixed C ABI, as step_plain, plus the filter/normalisation buffers"
    ),
}


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"streamgru/{self.path}:{self.line}: {self.what}"


def _parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    args = node.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    if names and names[0] in ("self", "cls"):
        names = names[1:]
    return len(names)


def _cli_parsing(rel: str, name: str) -> bool:
    """Argument definitions: ``cli.py`` and each package's ``cli_args.py`` / ``emulator_cli.py``."""
    parser_module = rel == "cli.py" or rel.endswith(("/cli_args.py", "/emulator_cli.py"))
    return parser_module and (name == "build_parser" or name.startswith(("_add_", "add_")))


def scan(package: Path = PACKAGE) -> tuple[list[Violation], set[tuple[str, str]]]:
    """All violations under ``package``, and the allowlist entries that were used."""
    found: list[Violation] = []
    used: set[tuple[str, str]] = set()
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        text = path.read_text(encoding="utf-8")
        n_lines = len(text.splitlines())
        if n_lines > MAX_MODULE_LINES:
            found.append(Violation(rel, 1, f"module has {n_lines} lines (> {MAX_MODULE_LINES})"))
        for node in ast.walk(ast.parse(text, filename=str(path))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if _cli_parsing(rel, node.name):
                continue
            span = (node.end_lineno or node.lineno) - node.lineno + 1
            if span > MAX_FUNCTION_LINES:
                found.append(
                    Violation(rel, node.lineno, f"{node.name}() spans {span} lines (> 80)")
                )
            n_params = _parameters(node)
            if n_params > MAX_PARAMETERS:
                if (rel, node.name) in ALLOWED_PARAMETERS:
                    used.add((rel, node.name))
                    continue
                found.append(
                    Violation(rel, node.lineno, f"{node.name}() takes {n_params} parameters (> 8)")
                )
    return found, used


def test_modules_and_functions_within_the_limits():
    found, _ = scan()
    assert not found, (
        f"{len(found)} size-limit violation(s) (CONTRIBUTING.md: modules <= 500 lines, "
        "functions <= 80 lines and <= 8 parameters; use a settings dataclass):\n"
        + "\n".join(str(v) for v in found)
    )


def test_every_allowlist_entry_is_still_needed():
    _, used = scan()
    stale = sorted(set(ALLOWED_PARAMETERS) - used)
    assert not stale, f"ALLOWED_PARAMETERS entries no longer needed, remove them: {stale}"


def test_the_scanner_sees_each_kind_of_violation(tmp_path):
    """The checker itself: a module that breaks every rule is reported for each."""
    body = "\n".join(f"    x{k} = {k}" for k in range(MAX_FUNCTION_LINES))
    params = ", ".join(f"a{k}" for k in range(MAX_PARAMETERS + 1))
    source = (
        f"def long():\n{body}\n\n\n"
        f"class C:\n    def many(self, {params}):\n        return 0\n\n\n"
        f"def fine(self, {', '.join(f'b{k}' for k in range(MAX_PARAMETERS))}):\n    return 0\n"
    )
    source += "\n" * (MAX_MODULE_LINES + 1 - len(source.splitlines()))
    (tmp_path / "big.py").write_text(source, encoding="utf-8")
    found, used = scan(tmp_path)
    what = sorted(v.what for v in found)
    assert what == [
        f"long() spans {MAX_FUNCTION_LINES + 1} lines (> 80)",
        f"many() takes {MAX_PARAMETERS + 1} parameters (> 8)",
        f"module has {MAX_MODULE_LINES + 1} lines (> {MAX_MODULE_LINES})",
    ], what
    assert not used
