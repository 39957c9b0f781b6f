"""Extract uWSGI's option table from its C source, for `toolkit/uwsgi_options.json`.

uWSGI declares every option as `{"name", arg, shortcut, "help", handler, target, flags}`
in core/uwsgi.c and in each plugin. The handler says how the value is read (atoi, a flag,
a socket, a list) and the target says what it sets; options with the same handler and
target are aliases. `uwsgi --help` shows neither, so the checker reads this table.

    python -m tests.option_table SOURCE_DIR   # a `pip download --no-binary :all: uwsgi` sdist
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

TABLE = Path(__file__).parent.parent / "toolkit" / "uwsgi_options.json"
_ENTRY = re.compile(
    r'\{\s*"(?P<name>[^"]+)"\s*,\s*(?P<arg>no_argument|required_argument|optional_argument)\s*,'
    r"\s*(?P<short>[^,]+?)\s*,\s*(?P<help>(?:\"(?:[^\"\\]|\\.)*\"\s*)+),"
    r"\s*(?P<handler>[A-Za-z_0-9]+)\s*,\s*(?P<target>[^,{}]+?)\s*(?:,\s*[^{}]*?)?\}",
    re.DOTALL,
)


_CONDITION = re.compile(r'uwsgi_register_route_condition\("(?P<name>[^"]+)"')


def _plugin_of(path: Path, root: Path) -> str:
    parts = path.relative_to(root).parts
    return parts[1] if parts[0] == "plugins" else "core"


def extract(root: Path) -> dict[str, list[str]]:
    """name -> [handler, target, argument kind, plugin, "file:line"]; core wins a clash,
    as in uWSGI, which builds its table from the core options first."""
    table: dict[str, list[str]] = {}
    sources = sorted(root.glob("core/*.c")) + sorted(root.glob("plugins/*/*.c"))
    for path in sources:
        text = path.read_text(errors="replace")
        for match in _ENTRY.finditer(text):
            name = match["name"]
            if name in table:
                continue
            line = text.count("\n", 0, match.start()) + 1
            target = " ".join(match["target"].split())
            table[name] = [
                match["handler"],
                target,
                match["arg"].replace("_argument", ""),
                _plugin_of(path, root),
                f"{path.relative_to(root)}:{line}",
            ]
    return table


def route_conditions(root: Path) -> dict[str, str]:
    """Condition name -> "file:line" of the call that registers it (route-if and friends)."""
    found: dict[str, str] = {}
    for path in sorted(root.glob("core/*.c")) + sorted(root.glob("plugins/*/*.c")):
        text = path.read_text(errors="replace")
        for match in _CONDITION.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.setdefault(match["name"], f"{path.relative_to(root)}:{line}")
    return found


def render(root: Path, version: str) -> str:
    options = ",\n".join(
        f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(extract(root).items())
    )
    conditions = json.dumps(route_conditions(root), sort_keys=True)
    return (
        f'{{"version": {json.dumps(version)},\n"route_conditions": {conditions},\n'
        f'"options": {{\n{options}\n}}}}\n'
    )


if __name__ == "__main__":
    source = Path(sys.argv[1])
    version = re.search(r"^Version: (\S+)", (source / "PKG-INFO").read_text(), re.MULTILINE)
    TABLE.write_text(render(source, version.group(1) if version else "unknown"))
    print(f"wrote {TABLE}")
