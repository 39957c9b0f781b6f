"""Templates to text: pure, with template errors pointing at the template's file and line."""

from __future__ import annotations

import functools
import re
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from toolkit.catalog import cache_dir
from toolkit.errors import ToolkitError
from toolkit.installed import system_python
from toolkit.recipes import Recipe, data_dir
from toolkit.settings import uwsgi_magic

TEMPLATE_SUFFIX = ".j2"
# Blocks left empty by their variables leave blank lines behind; one is enough.
BLANK_RUNS = re.compile(r"\n{3,}")


@functools.lru_cache(maxsize=64)
def environment(recipe: Recipe, overrides: Path | None = None) -> jinja2.Environment:
    """Lookup order: the deployment's templates/, the recipe's, then the base ones.

    The base templates are also reachable as `base/NAME`, so a recipe or a
    deployment can extend the template it replaces and override one block.
    One environment per recipe and folder, so its compiled templates are reused (rendering
    1,000 inventory hosts compiles each template once); compiled code is also cached on
    disk between runs, keyed by the template's source.
    """
    search = [p for p in (overrides, recipe.templates_dir) if p is not None and p.is_dir()]
    base = data_dir("templates")
    loader = jinja2.ChoiceLoader(
        [
            jinja2.FileSystemLoader([*search, base]),
            jinja2.PrefixLoader({"base": jinja2.FileSystemLoader(base)}),
        ]
    )
    environment = jinja2.Environment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        bytecode_cache=_bytecode_cache(),
    )
    environment.globals["toolkit_env_loader"] = as_uwsgi_text(own_module_path("env_loader"))
    environment.globals["toolkit_stack_dumper"] = as_uwsgi_text(own_module_path("stack_dumper"))
    environment.globals["system_python"] = as_uwsgi_text(system_python())
    environment.globals["toolkit_python_path"] = as_uwsgi_text(
        own_path(Path(__file__).parent.parent)
    )
    return environment


def own_module_path(name: str) -> str:
    """One of toolkit's modules that uWSGI imports by path into the app's Python (the env
    loader, the stack dumper): a file of the standard library's imports only."""
    return own_path(Path(__file__).parent / f"{name}.py")


def own_path(path: Path) -> str:
    """A path of toolkit's own install, for a vassal file: refused if uWSGI would expand it."""
    text = str(path.resolve())
    magic = uwsgi_magic(text)
    if magic is not None:
        raise ToolkitError(
            f"toolkit is installed under a path holding {magic!r}, which uWSGI would expand",
            file=text,
            hint="install toolkit under another folder",
        )
    return text


def as_uwsgi_text(value: Any) -> Any:
    """A value as uWSGI must read it to get it back as written: every `%` doubled, since
    uWSGI turns `%X` into one of its magic variables (magic_sub(), core/utils.c) and `%%`
    into `%`. The other magic (`$(`, `@(`, `%(`) never reaches here (settings refuses it)."""
    if isinstance(value, str):
        return value.replace("%", "%%")
    if isinstance(value, list | tuple):
        return [as_uwsgi_text(item) for item in value]
    return value


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    folder = cache_dir() / "jinja"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(folder))


def _template_line(error: BaseException) -> tuple[str | None, int | None]:
    """Jinja rewrites tracebacks so template frames carry the template's own file and line."""
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        if frame.filename.endswith(TEMPLATE_SUFFIX):
            return frame.filename, frame.lineno
    return None, None


def _own_template(env: jinja2.Environment, name: str) -> str:
    source = env.loader.get_source(env, name)[1] if env.loader else None
    return source or name


def render(
    recipe: Recipe, values: Mapping[str, Any], overrides: Path | None = None
) -> dict[str, str]:
    """Render every vassal of the recipe: relative output path -> text."""
    env = environment(recipe, overrides)
    rendered: dict[str, str] = {}
    for vassal, (output, extra) in ((v, o) for v in recipe.vassals for o in v.outputs(values)):
        name = vassal.path + TEMPLATE_SUFFIX
        try:
            context = {key: as_uwsgi_text(value) for key, value in {**values, **extra}.items()}
            text = env.get_template(name).render(context)
            rendered[output] = BLANK_RUNS.sub("\n\n", text)
        except jinja2.TemplateSyntaxError as error:
            raise ToolkitError(
                f"template syntax error: {error.message}",
                file=error.filename or name,
                line=error.lineno,
            ) from None
        except jinja2.TemplateNotFound as error:
            raise ToolkitError(
                f"template not found: {error.name}",
                file=recipe.path / "recipe.ini",
                hint=f"add {name} to the recipe's templates/ or fix `vassals`",
            ) from None
        except RecursionError:
            blocks = (
                ", ".join(env.get_template(f"base/{name}").blocks)
                if (data_dir("templates") / name).is_file()
                else ""
            )
            raise ToolkitError(
                f"{name} extends itself",
                file=_own_template(env, name),
                line=1,
                hint=f'extend "base/{name}" to override one of its blocks'
                + (f" ({blocks})" if blocks else ""),
            ) from None
        except jinja2.UndefinedError as error:
            file, line = _template_line(error)
            raise ToolkitError(
                f"undefined variable: {error.message}",
                file=file or name,
                line=line,
                hint="add it to the recipe's [variables] or fix the template",
            ) from None
        except Exception as error:  # a template can raise anything; report it, never a traceback
            file, line = _template_line(error)
            raise ToolkitError(f"template error: {error}", file=file or name, line=line) from None
    return rendered
