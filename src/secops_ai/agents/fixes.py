"""Fix templates for well-known scanner rules: source text + a finding's line → fixed source text.

The guided workflow (:mod:`secops_ai.agents.guided`) offers these to a small model as a constrained choice
("which fix?") next to writing the replacement line itself. Each template edits the syntax tree's own
positions (``ast`` node offsets), never a regular expression over the whole file, and refuses (raises
:class:`FixNotApplicable`) when the line does not hold the construct it knows how to fix. Whether a fix
really fixed anything is still decided by re-running the scanner (``propose_patch``), never by the template.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass


class FixNotApplicable(ValueError):
    """The template does not recognise the code at the finding's line."""


@dataclass(frozen=True)
class FixTemplate:
    id: str
    rules: tuple[str, ...]  # scanner rule ids (bandit test ids, semgrep rule ids) it addresses
    description: str
    apply: Callable[[str, int], str]


# ------------------------------------------------------------------------------------------- source edits
def _offsets(text: str) -> list[int]:
    """Character offset of the start of each line (1-based line numbers index it with ``[line - 1]``)."""
    out, pos = [], 0
    for line in text.splitlines(keepends=True):
        out.append(pos)
        pos += len(line)
    out.append(pos)
    return out


def _span(text: str, node: ast.AST) -> tuple[int, int]:
    """(start, end) character offsets of ``node`` in ``text`` (ast columns are UTF-8 byte offsets)."""
    lines = text.splitlines(keepends=True)
    starts = _offsets(text)

    def char(lineno: int, col: int) -> int:
        return starts[lineno - 1] + len(lines[lineno - 1].encode()[:col].decode(errors="ignore"))

    return char(node.lineno, node.col_offset), char(node.end_lineno or node.lineno, node.end_col_offset or 0)


def _segment(text: str, node: ast.AST) -> str:
    a, b = _span(text, node)
    return text[a:b]


def _parse(text: str) -> ast.Module:
    try:
        return ast.parse(text)
    except SyntaxError as exc:
        raise FixNotApplicable(f"the file does not parse: {exc.msg} (line {exc.lineno})") from None


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _calls_at(tree: ast.AST, line: int, pred: Callable[[ast.Call], bool]) -> ast.Call:
    """The innermost call covering ``line`` that ``pred`` accepts (the finding's line may be any of a call's)."""
    found = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.lineno <= line <= (n.end_lineno or n.lineno)
             and pred(n)]
    if not found:
        raise FixNotApplicable(f"no matching call on line {line}")
    return min(found, key=lambda n: ((n.end_lineno or n.lineno) - n.lineno, -(n.col_offset)))


def _splice(text: str, edits: list[tuple[int, int, str]]) -> str:
    for a, b, new in sorted(edits, reverse=True):
        text = text[:a] + new + text[b:]
    return text


def _drop_keyword(text: str, call: ast.Call, name: str) -> tuple[int, int, str]:
    """An edit removing ``name=...`` (and the comma before it) from ``call``."""
    kw = next(k for k in call.keywords if k.arg == name)
    a, b = _span(text, kw.value)
    a = text.rfind(name, 0, a)
    comma = text.rfind(",", 0, a)
    return (comma if comma != -1 and text[comma + 1:a].strip() == "" else a, b, "")


def _set_keyword(text: str, call: ast.Call, name: str, value: str) -> tuple[int, int, str]:
    kw = next((k for k in call.keywords if k.arg == name), None)
    if kw is None:
        raise FixNotApplicable(f"the call has no {name}= argument")
    a, b = _span(text, kw.value)
    return (a, b, value)


def add_import(text: str, statement: str) -> str:
    """``text`` with ``statement`` (``import x``) added after the top-level imports, unless already there."""
    tree = _parse(text)
    lines = text.splitlines(keepends=True)
    if any(line.strip() == statement for line in lines):
        return text
    after = 0
    body = tree.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        after = body[0].end_lineno or 0  # after the module docstring
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            after = max(after, node.end_lineno or node.lineno)
        elif not isinstance(node, ast.Expr):
            break
    return "".join([*lines[:after], statement + "\n", *lines[after:]])


def remove_import_if_unused(text: str, module: str) -> str:
    tree = _parse(text)
    used = any(isinstance(n, ast.Name) and n.id == module for n in ast.walk(tree))
    if used:
        return text
    lines = text.splitlines(keepends=True)
    return "".join(line for line in lines if line.strip() != f"import {module}")


# ----------------------------------------------------------------------------------------------- templates
def _shell_to_argv(text: str, line: int) -> str:
    tree = _parse(text)
    call = _calls_at(tree, line, lambda c: _dotted(c.func).startswith("subprocess.") and any(
        k.arg == "shell" and isinstance(k.value, ast.Constant) and k.value.value is True for k in c.keywords))
    if not call.args:
        raise FixNotApplicable("the subprocess call has no command argument")
    cmd = call.args[0]
    a, b = _span(text, cmd)
    new = text[a:b] if isinstance(cmd, (ast.List, ast.Tuple)) else f"shlex.split({text[a:b]})"
    out = _splice(text, [(a, b, new), _drop_keyword(text, call, "shell")])
    return add_import(out, "import shlex") if new.startswith("shlex.") else out


def _os_system_to_subprocess(text: str, line: int) -> str:
    tree = _parse(text)
    call = _calls_at(tree, line, lambda c: _dotted(c.func) in ("os.system", "os.popen") and len(c.args) == 1)
    if _dotted(call.func) != "os.system":
        raise FixNotApplicable("only os.system is rewritten (os.popen's file object has no direct equivalent)")
    a, b = _span(text, call)
    new = f"subprocess.run(shlex.split({_segment(text, call.args[0])}), check=False).returncode"
    out = add_import(add_import(_splice(text, [(a, b, new)]), "import shlex"), "import subprocess")
    return remove_import_if_unused(out, "os")


def _yaml_safe_load(text: str, line: int) -> str:
    tree = _parse(text)
    call = _calls_at(tree, line, lambda c: _dotted(c.func) in ("yaml.load", "yaml.load_all") and bool(c.args))
    fn = "yaml.safe_load" if _dotted(call.func) == "yaml.load" else "yaml.safe_load_all"
    a, b = _span(text, call)
    return _splice(text, [(a, b, f"{fn}({_segment(text, call.args[0])})")])


def _pickle_to_json(text: str, line: int) -> str:
    tree = _parse(text)
    call = _calls_at(tree, line, lambda c: _dotted(c.func) in ("pickle.loads", "pickle.load", "cPickle.loads"))
    a, b = _span(text, call.func)
    fn = "json.load" if _dotted(call.func) == "pickle.load" else "json.loads"
    out = add_import(_splice(text, [(a, b, fn)]), "import json")
    return remove_import_if_unused(out, _dotted(call.func).split(".")[0])


def _remove_unused_import(text: str, line: int) -> str:
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        raise FixNotApplicable(f"line {line} is outside the file")
    m = re.fullmatch(r"\s*import (\w+)\s*", lines[line - 1])
    if not m:
        raise FixNotApplicable("the line is not a plain 'import module'")
    out = remove_import_if_unused(text, m.group(1))
    if out == text:
        raise FixNotApplicable(f"{m.group(1)} is still used in the file")
    return out


def _strong_hash(text: str, line: int) -> str:
    tree = _parse(text)
    call = _calls_at(tree, line, lambda c: _dotted(c.func) in ("hashlib.md5", "hashlib.sha1")
                     or (_dotted(c.func) == "hashlib.new" and bool(c.args)))
    if _dotted(call.func) == "hashlib.new":
        a, b = _span(text, call.args[0])
        return _splice(text, [(a, b, '"sha256"')])
    a, b = _span(text, call.func)
    return _splice(text, [(a, b, "hashlib.sha256")])


def _not_for_security(text: str, line: int) -> str:
    tree = _parse(text)
    call = _calls_at(tree, line, lambda c: _dotted(c.func) in ("hashlib.md5", "hashlib.sha1"))
    if any(k.arg == "usedforsecurity" for k in call.keywords):
        raise FixNotApplicable("usedforsecurity is already set")
    end = _span(text, call)[1] - 1  # the closing parenthesis
    sep = ", " if call.args or call.keywords else ""
    return _splice(text, [(end, end, f"{sep}usedforsecurity=False")])


def _verify_tls(text: str, line: int) -> str:
    tree = _parse(text)
    call = _calls_at(tree, line, lambda c: any(k.arg == "verify" for k in c.keywords))
    return _splice(text, [_set_keyword(text, call, "verify", "True")])


def _debug_off(text: str, line: int) -> str:
    tree = _parse(text)
    call = _calls_at(tree, line, lambda c: any(k.arg == "debug" for k in c.keywords))
    return _splice(text, [_set_keyword(text, call, "debug", "False")])


def _literal_eval(text: str, line: int) -> str:
    tree = _parse(text)
    call = _calls_at(tree, line, lambda c: isinstance(c.func, ast.Name) and c.func.id == "eval")
    a, b = _span(text, call.func)
    return add_import(_splice(text, [(a, b, "ast.literal_eval")]), "import ast")


def _mkstemp(text: str, line: int) -> str:
    tree = _parse(text)
    call = _calls_at(tree, line, lambda c: _dotted(c.func) == "tempfile.mktemp")
    a, b = _span(text, call)
    args = text[_span(text, call.func)[1]:b]  # "(suffix=...)"
    return _splice(text, [(a, b, f"tempfile.mkstemp{args}[1]")])


def _bind_localhost(text: str, line: int) -> str:
    lines = text.splitlines(keepends=True)
    if not 1 <= line <= len(lines) or "0.0.0.0" not in lines[line - 1]:
        raise FixNotApplicable(f"no '0.0.0.0' on line {line}")
    lines[line - 1] = lines[line - 1].replace("0.0.0.0", "127.0.0.1")
    return "".join(lines)


def _sql_parameters(text: str, line: int) -> str:
    """``cur.execute(<query built from strings>)`` → ``cur.execute("... ?", (params,))``."""
    tree = _parse(text)
    call = _calls_at(tree, line, lambda c: isinstance(c.func, ast.Attribute)
                     and c.func.attr in ("execute", "executemany") and len(c.args) == 1)
    parts = _query_parts(text, call.args[0])
    sql, params = "", []
    for kind, value in parts:
        if kind == "str":
            sql += value
        else:
            sql += "\0"
            params.append(value)
    if not params:
        raise FixNotApplicable("the query is not built from values")
    sql = re.sub(r"'\0'|\"\0\"|\0", "?", sql)
    a, b = _span(text, call.args[0])
    return _splice(text, [(a, b, f"{json.dumps(sql)}, ({', '.join(params)},)")])


def _query_parts(text: str, node: ast.AST) -> list[tuple[str, str]]:
    """A string expression as ("str", literal) and ("expr", source) pieces, in order."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [("str", node.value)]
    if isinstance(node, ast.JoinedStr):
        out: list[tuple[str, str]] = []
        for v in node.values:
            if isinstance(v, ast.FormattedValue):
                if v.format_spec is not None or v.conversion != -1:
                    raise FixNotApplicable("formatted values with a spec are not rewritten")
                out.append(("expr", _segment(text, v.value)))
            else:
                out.extend(_query_parts(text, v))
        return out
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _query_parts(text, node.left) + _query_parts(text, node.right)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Constant) \
            and isinstance(node.left.value, str):
        values = node.right.elts if isinstance(node.right, ast.Tuple) else [node.right]
        pieces = re.split(r"%[sdr]", node.left.value)
        if len(pieces) != len(values) + 1:
            raise FixNotApplicable("the % placeholders do not match the values")
        return _interleave(pieces, [_segment(text, v) for v in values])
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format" \
            and isinstance(node.func.value, ast.Constant) and isinstance(node.func.value.value, str) \
            and not node.keywords:
        pieces = re.split(r"\{\}", node.func.value.value)
        if len(pieces) != len(node.args) + 1:
            raise FixNotApplicable("only positional {} placeholders are rewritten")
        return _interleave(pieces, [_segment(text, v) for v in node.args])
    if isinstance(node, (ast.Name, ast.Attribute, ast.Subscript, ast.Call)):
        return [("expr", _segment(text, node))]
    raise FixNotApplicable("the query is built in a way this template does not know")


def _interleave(pieces: list[str], values: list[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = [("str", pieces[0])]
    for value, piece in zip(values, pieces[1:], strict=True):
        out += [("expr", value), ("str", piece)]
    return out


TEMPLATES: tuple[FixTemplate, ...] = (
    FixTemplate("argv_without_shell", ("B602", "B604", "python-subprocess-shell-true"),
                "run the command as an argument list (shlex.split) without a shell", _shell_to_argv),
    FixTemplate("subprocess_instead_of_os_system", ("B605", "python-os-system"),
                "replace os.system with subprocess.run on an argument list", _os_system_to_subprocess),
    FixTemplate("yaml_safe_load", ("B506", "python-yaml-unsafe-load"), "use yaml.safe_load", _yaml_safe_load),
    FixTemplate("json_instead_of_pickle", ("B301", "python-pickle-load"),
                "deserialise with json instead of pickle", _pickle_to_json),
    FixTemplate("remove_unused_import", ("B403", "B404"), "drop an import that is no longer used",
                _remove_unused_import),
    FixTemplate("sha256_instead_of_weak_hash", ("B324", "B303", "python-weak-hash"), "use hashlib.sha256",
                _strong_hash),
    FixTemplate("mark_hash_not_for_security", ("B324",), "pass usedforsecurity=False (a checksum, not security)",
                _not_for_security),
    FixTemplate("verify_tls", ("B501", "python-requests-no-verify"), "verify TLS certificates (verify=True)",
                _verify_tls),
    FixTemplate("sql_query_parameters", ("B608", "python-sql-string-format"),
                "pass values as query parameters (?) instead of formatting them into the SQL", _sql_parameters),
    FixTemplate("literal_eval_instead_of_eval", ("B307", "python-eval-exec"), "use ast.literal_eval",
                _literal_eval),
    FixTemplate("mkstemp_instead_of_mktemp", ("B306", "python-tempfile-mktemp"), "use tempfile.mkstemp",
                _mkstemp),
    FixTemplate("debug_off", ("B201", "python-flask-debug"), "turn Flask debug mode off", _debug_off),
    FixTemplate("bind_localhost", ("B104",), "listen on 127.0.0.1 instead of all interfaces", _bind_localhost),
)
BY_ID = {t.id: t for t in TEMPLATES}


def templates_for(rule_id: str) -> list[FixTemplate]:
    return [t for t in TEMPLATES if rule_id in t.rules]


def applicable(rule_id: str, text: str, line: int) -> list[tuple[FixTemplate, str]]:
    """(template, fixed text) for each template of ``rule_id`` that recognises the code at ``line``."""
    out = []
    for t in templates_for(rule_id):
        try:
            fixed = t.apply(text, line)
        except FixNotApplicable:
            continue
        if fixed != text:
            out.append((t, fixed))
    return out


def replace_line(text: str, line: int, new_line: str) -> str:
    """``text`` with line ``line`` replaced by ``new_line`` (its indentation kept when the new line has none)."""
    lines = text.splitlines(keepends=True)
    if not 1 <= line <= len(lines):
        raise FixNotApplicable(f"line {line} is outside the file ({len(lines)} lines)")
    old = lines[line - 1]
    indent = old[: len(old) - len(old.lstrip())]
    body = new_line.strip("\r\n")
    if body == body.lstrip():
        body = indent + body
    lines[line - 1] = body + ("\n" if old.endswith("\n") else "")
    return "".join(lines)


def unified_diff(path: str, before: str, after: str) -> str:
    """A ``--- a/path`` / ``+++ b/path`` unified diff (what ``propose_patch`` takes)."""
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        f"a/{path}", f"b/{path}"))
