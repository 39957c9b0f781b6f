"""Rules on option names: unknown options and typos, placeholders, plugins missing or built in,
one setting written twice (core/uwsgi.c: uwsgi_opt table, strict mode)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from toolkit.check.model import Context, Finding, at
from toolkit.check.reading import read_flag
from toolkit.errors import did_you_mean
from toolkit.uwsgi_config import PLACEHOLDER, Config, Setting, references
from toolkit.uwsgi_ini import MERGE_MARKERS
from toolkit.uwsgi_options import ValueKind

# Keys uWSGI 2.0 does not have that people write after reading newer docs.
# Options uWSGI 2.0.31 has only when built with PCRE (`uwsgi --help` of a build without it,
# compared with one with it): internal routing, and what matches with regular expressions.
PCRE_PREFIXES = (
    "route", "response-route", "final-route", "error-route", "static-expires", "static-gzip",
    "log-route", "log-req-route", "log-filter", "log-drain", "log-alarm", "alarm-log",
    "not-alarm-log", "not-log-alarm", "if-hostname-match", "if-not-hostname-match",
    "sni-regexp", "pcre-jit",
)  # fmt: skip
NOT_IN_2_0 = {
    "else": "uWSGI 2.0 has no `else`: close the block and open its opposite (if-not-...)",
    "end": "uWSGI 2.0 closes blocks with `endif` or `endfor`, not `end`",
}
LOGIC_OPT_KEYS = ("if-opt", "if-not-opt")
TYPO_CUTOFF = 0.8
# Shorter keys are close to some option by chance (`app` and `pp`): placeholders, not typos.
MIN_TYPO_LENGTH = 4
NEAR_AN_OPTION = "close to a real option"
CAMEL_CASE = re.compile(r"[a-z][A-Z]|^[A-Z]")


def _is_strict(config: Config) -> bool:
    strict = config.last("strict")
    return strict is not None and read_flag(strict.value).means == "true"


def _known(key: str, config: Config, context: Context) -> bool:
    """Known to this build, declared by the file, or a merge marker (U003 says so)."""
    return (
        context.catalog.knows(key)
        or key in config.declared
        or key in config.placeholders
        or key.startswith(MERGE_MARKERS)
        or not key.strip("=")
    )


def _used_as_placeholders(config: Config) -> set[str]:
    """Names read back with `%(name)` (words of `%(a + b)` too) or tested by if-opt."""
    used: set[str] = set()
    for setting in [*config.settings, *config.skipped]:
        for inside in references(setting.written, PLACEHOLDER):
            used.update(inside.split())
        if setting.key in LOGIC_OPT_KEYS:
            used.add(setting.value.partition("=")[0])
    return used


def _missing_plugins(config: Config, context: Context) -> set[str]:
    return {
        name
        for setting in config.all("plugins", "plugin", "need-plugin", "need-plugins")
        for name in _plugin_names(setting.value)
        if _base_plugin(name) not in context.catalog.plugins
    }


def _loaded_plugins(config: Config) -> set[str]:
    """The plugins the file loads, named as their options begin (`dgram_router` is
    `dgram-router-...`)."""
    return {
        _base_plugin(name).replace("_", "-")
        for setting in config.all("plugins", "plugin", "need-plugin", "need-plugins")
        for name in _plugin_names(setting.value)
    }


def _of_loaded_plugin(key: str, loaded: set[str], context: Context) -> bool:
    """An option named after a plugin the file loads is that plugin's, not a typo: uWSGI
    learns a plugin's options when it loads it (uwsgi_load_plugin, core/plugins.c)."""
    return not context.catalog.knows(key) and any(
        key == plugin or key.startswith(f"{plugin}-") for plugin in loaded
    )


def _plugin_names(value: str) -> list[str]:
    names = [n.strip() for n in re.split(r"[,\s]+", value) if n.strip()]
    return [os.path.basename(n).removesuffix("_plugin.so") for n in names]


def _base_plugin(name: str) -> str:
    """Distributions name the python plugin python3, python311...: one plugin to uWSGI."""
    return re.sub(r"^(python|pypy|rack|ruby|lua|php|psgi)\d*$", r"\1", name)


def unknown_option(config: Config, context: Context) -> Iterator[Finding]:
    """uwsgi_opt_get(): with `strict`, an unknown key stops the start; without it, the key
    is silently a placeholder, so a misspelt option does nothing."""
    strict = _is_strict(config)
    missing = _missing_plugins(config, context)
    loaded = _loaded_plugins(config)
    used = _used_as_placeholders(config)
    unrouted = not routing_built(context)
    for setting in config.settings:
        key = setting.key
        if (
            _known(key, config, context)
            or (unrouted and _routing(key, context))
            or _of_loaded_plugin(key, loaded, context)
        ):
            continue
        if key in NOT_IN_2_0:
            yield at(setting, f"unknown option {key!r}", NOT_IN_2_0[key])
            continue
        plugin = context.table.plugin(key)
        if plugin is not None:
            if plugin not in missing:
                yield at(
                    setting,
                    f"option {key!r} belongs to the {plugin} plugin, which this uWSGI "
                    f"({context.catalog.version}) lacks",
                    f"build uWSGI with the {plugin} plugin or remove the option",
                )
            continue
        if strict:
            hint = did_you_mean(key, context.catalog.options, "see `uwsgi --help`", TYPO_CUTOFF)
            yield at(setting, f"unknown option {key!r}", hint)
        elif key not in used and (shape := _option_shape(key, context)):
            yield at(
                setting,
                f"unknown option {key!r}{'' if shape == NEAR_AN_OPTION else f' ({shape})'}: "
                "uWSGI ignores it without a word",
                _unknown_hint(setting, context),
            )


def routing_built(context: Context) -> bool:
    """uWSGI compiles its internal routing only when the PCRE headers were there at build
    time (uwsgiconfig.py: `if has_pcre`); without it, `route-if` and its kin are unknown."""
    return context.catalog.knows("route-if")


def _routing(key: str, context: Context) -> bool:
    return context.table.kind(key) is ValueKind.ROUTE or key.startswith(PCRE_PREFIXES)


def without_routing(config: Config, context: Context) -> Iterator[Finding]:
    """One finding for a build without PCRE, instead of one unknown option per route."""
    if routing_built(context):
        return
    setting = next((s for s in config.settings if _routing(s.key, context)), None)
    if setting is not None:
        yield at(
            setting,
            f"this uWSGI ({context.catalog.version}) was built without PCRE, so it has no "
            f"internal routing: {setting.key} and every option that needs PCRE are unknown "
            "to it",
            "install the PCRE2 headers (Debian/Ubuntu: libpcre2-dev; Fedora: pcre2-devel), "
            "then rebuild uWSGI: pip install --force-reinstall --no-cache-dir uwsgi",
        )


def placeholder_option(config: Config, context: Context) -> Iterator[Finding]:
    """Without `strict`, uWSGI takes an unknown key as a placeholder; with it, it refuses."""
    if _is_strict(config):
        return
    missing = _missing_plugins(config, context)
    loaded = _loaded_plugins(config)
    used = _used_as_placeholders(config)
    for setting in config.settings:
        key = setting.key
        if (
            _known(key, config, context)
            or key in NOT_IN_2_0
            or context.table.plugin(key) is not None
            or _of_loaded_plugin(key, loaded, context)
            or (key not in used and _option_shape(key, context))
        ):
            continue
        if missing and key not in used:
            yield at(
                setting,
                f"unknown option {key!r}: perhaps from the {', '.join(sorted(missing))} "
                "plugin this build lacks",
            )
        else:
            how = "read back as %(" + key + ")" if key in used else "never read back"
            yield at(
                setting,
                f"{key!r} is not a uWSGI option: a placeholder ({how}); "
                "`uwsgi --strict` refuses it",
                f"declare it with `set-placeholder = {key}=...`",
            )


def _option_shape(key: str, context: Context) -> str:
    """Why an unknown key looks meant as an option rather than as a placeholder name, or
    "": uWSGI's options are lowercase words joined by dashes, and placeholder names are
    usually plain words or words joined by underscores."""
    if any(blank in key for blank in " \t"):
        return "a blank inside: the `=` after the option is missing?"
    if CAMEL_CASE.search(key):
        return "CamelCase: a line from another tool's config?"
    if "_" in key:
        return ""
    if "-" in key:
        return "written like an option, with dashes"
    if len(key) >= MIN_TYPO_LENGTH and did_you_mean(key, context.catalog.options, "", TYPO_CUTOFF):
        return NEAR_AN_OPTION
    return ""


def _unknown_hint(setting: Setting, context: Context) -> str:
    key, options = setting.key, context.catalog.options
    if " " in key:
        option, _, rest = key.partition(" ")
        if context.catalog.knows(option):
            return f"write `{option} = {rest.strip()}={setting.value}`"
    family = key.split("-")[0]
    kin = [o for o in options if o == family or o.startswith(f"{family}-")]
    return did_you_mean(key, options, "", TYPO_CUTOFF) or did_you_mean(
        key,
        kin,
        "see `uwsgi --help`; a placeholder is declared with `set-placeholder = NAME=value`",
        0.5,
    )


def unknown_in_untaken_branch(config: Config, context: Context) -> Iterator[Finding]:
    """uWSGI only looks up the keys of the branches it takes."""
    used = _used_as_placeholders(config)
    for setting in config.skipped:
        if (
            _known(setting.key, config, context)
            or context.table.plugin(setting.key)
            or setting.key in used
        ):
            continue
        hint = NOT_IN_2_0.get(setting.key) or did_you_mean(
            setting.key, context.catalog.options, "see `uwsgi --help`"
        )
        yield at(
            setting,
            f"unknown option {setting.key!r}, not read here ({setting.condition} does not "
            "hold); uWSGI would refuse it where it does",
            hint,
        )


def missing_plugin(config: Config, context: Context) -> Iterator[Finding]:
    """uwsgi_load_plugin(): a plugin neither built in nor found as a .so file is an error
    message at start, and uWSGI refuses its options; one finding names them all."""
    for setting in config.all("plugins", "plugin", "need-plugin", "need-plugins"):
        for name in _plugin_names(setting.value):
            base = _base_plugin(name)
            if base in context.catalog.plugins:
                continue
            lines = [str(s.line) for s in plugin_options(config, context, base)]
            refused = f"; uWSGI refuses its options (line {', '.join(lines)})" if lines else ""
            yield at(
                setting,
                f"this uWSGI ({context.catalog.version}) has no {name!r} plugin{refused}",
                f"install the {name} plugin, or use a uWSGI built with it",
            )


def plugin_options(config: Config, context: Context, plugin: str) -> list[Setting]:
    """The settings of `plugin` by uWSGI's table, or by the plugin's name as their prefix."""
    return [
        s
        for s in config.settings
        if not context.catalog.knows(s.key)
        and (
            context.table.plugin(s.key) == plugin
            or _of_loaded_plugin(s.key, {plugin.replace("_", "-")}, context)
        )
    ]


def built_in_plugin(config: Config, context: Context) -> Iterator[Finding]:
    for setting in config.all("plugins", "plugin"):
        for name in _plugin_names(setting.value):
            base = _base_plugin(name)
            if base in context.catalog.plugins and name not in context.catalog.plugins:
                yield at(
                    setting,
                    f"{name!r} is built into this uWSGI as {base!r}: uWSGI prints "
                    f"'UNABLE to load uWSGI plugin: ./{name}_plugin.so' and goes on",
                    f"write `plugins = {base}`, or drop it for this uWSGI",
                )


def repeated_setting(config: Config, context: Context) -> Iterator[Finding]:
    """One setting written twice in one file: the last silently wins. Across included files
    it is layering, as `ini = :base` setups mean it."""
    seen: dict[tuple[Path, str], Setting] = {}
    for setting in config.settings:
        if not context.table.single_value(setting.key):
            continue
        names = context.table.setting_of(setting.key)
        first = seen.get((setting.file, names[0]))
        if first is not None and first.value != setting.value:
            also = "" if first.key == setting.key else f" as {first.key!r}"
            yield at(
                setting,
                f"{setting.key!r} set again (first{also} on line {first.line}); "
                f"uWSGI uses {setting.value!r}",
                "keep one",
            )
        seen.setdefault((setting.file, names[0]), setting)
