"""The rule table: every rule, its ID, weight and summary, and the function that finds it.
The functions live by theme (structure, options, values, routing, paths, apps, between);
each cites the uWSGI behaviour it models."""

from __future__ import annotations

from toolkit.check.apps import (
    app_without_need_app,
    asgi_adapter_without_lazy_apps,
    beyond_loopback,
    imports_missing,
    memory_limit_unavailable,
    module_not_found,
    output_hidden,
    router_with_workers,
)
from toolkit.check.between import address_clash, unbound_backend
from toolkit.check.model import Rule, Weight
from toolkit.check.options import (
    built_in_plugin,
    missing_plugin,
    placeholder_option,
    repeated_setting,
    unknown_in_untaken_branch,
    unknown_option,
    without_routing,
)
from toolkit.check.paths import (
    env_file_lines,
    log_folder_not_writable,
    missing_beside_file,
    missing_env_file,
    missing_log_folder,
    missing_path,
    static_exposes_code,
    virtualenv_python,
)
from toolkit.check.routing import bad_route, unknown_route_condition
from toolkit.check.structure import (
    broken_seal,
    include_loop,
    included_section_missing,
    merge_markers,
    missing_include,
    nested_logic,
    no_section,
)
from toolkit.check.values import (
    bad_address,
    cheaper_not_below_processes,
    comment_in_app_value,
    comment_in_value,
    magic_that_runs,
    math_with_parentheses,
    misread_flag,
    misread_number,
    odd_flag,
    odd_number,
    quoted_value,
    quotes_kept,
    shell_variable,
)

RULES = (
    Rule("U001", Weight.ERROR, "no [uwsgi] section", one=no_section),
    Rule("U002", Weight.ERROR, "edited or cut short since rendering", one=broken_seal),
    Rule("U003", Weight.ERROR, "git merge conflict markers", one=merge_markers),
    Rule("U004", Weight.MACHINE, "an included file is missing", one=missing_include),
    Rule("U005", Weight.ERROR, "include loop", one=include_loop),
    Rule("U006", Weight.ERROR, "if/for block inside another", one=nested_logic),
    Rule("U007", Weight.WARNING, "included section missing", one=included_section_missing),
    Rule("U100", Weight.ERROR, "unknown option", one=unknown_option),
    Rule("U101", Weight.WARNING, "one setting written twice", one=repeated_setting),
    Rule("U102", Weight.MACHINE, "plugin missing from this build", one=missing_plugin),
    Rule("U103", Weight.WARNING, "a placeholder, not an option", one=placeholder_option),
    Rule(
        "U104", Weight.WARNING, "unknown option in a block not taken", one=unknown_in_untaken_branch
    ),
    Rule("U105", Weight.WARNING, "plugin that is built in", one=built_in_plugin),
    Rule("U106", Weight.MACHINE, "uWSGI built without routing (PCRE)", one=without_routing),
    Rule("V200", Weight.ERROR, "not an address uWSGI binds", one=bad_address),
    Rule("V201", Weight.ERROR, "number uWSGI reads differently", one=misread_number),
    Rule("V202", Weight.ERROR, "flag that looks false but is true", one=misread_flag),
    Rule("V203", Weight.ERROR, "cheaper not below processes", one=cheaper_not_below_processes),
    Rule("V204", Weight.WARNING, "number with a comment after it", one=odd_number),
    Rule("V205", Weight.WARNING, "flag with an unusual value", one=odd_flag),
    Rule("V206", Weight.ERROR, "comment inside a module or path", one=comment_in_app_value),
    Rule("V207", Weight.WARNING, "comment inside a value", one=comment_in_value),
    Rule("R500", Weight.ERROR, "unknown route condition", one=unknown_route_condition),
    Rule("R501", Weight.ERROR, "route without a valid action", one=bad_route),
    Rule("P400", Weight.MACHINE, "path missing", one=missing_path),
    Rule("P406", Weight.ERROR, "path missing in the file's own folder", one=missing_beside_file),
    Rule("P401", Weight.MACHINE, "log folder missing", one=missing_log_folder),
    Rule("P402", Weight.MACHINE, "log folder not writable", one=log_folder_not_writable),
    Rule("P403", Weight.MACHINE, "static folder serving code or secrets", one=static_exposes_code),
    Rule("P404", Weight.MACHINE, "virtualenv of another Python", one=virtualenv_python),
    Rule("P405", Weight.MACHINE, "env file missing", one=missing_env_file),
    Rule("V208", Weight.WARNING, "env file line not NAME=value", one=env_file_lines),
    Rule("V209", Weight.WARNING, "a value that runs or reads something", one=magic_that_runs),
    Rule("V210", Weight.ERROR, "quotes uWSGI keeps in a name or path", one=quoted_value),
    Rule("V211", Weight.WARNING, "quotes uWSGI keeps in a value", one=quotes_kept),
    Rule("V212", Weight.WARNING, "a shell variable uWSGI never expands", one=shell_variable),
    Rule("V213", Weight.ERROR, "placeholder math with parentheses", one=math_with_parentheses),
    Rule("W600", Weight.WARNING, "router-only vassal with workers", one=router_with_workers),
    Rule("W601", Weight.MACHINE, "module not found", one=module_not_found),
    Rule("P407", Weight.MACHINE, "what the app imports is not installed", one=imports_missing),
    Rule(
        "W604",
        Weight.ERROR,
        "ASGI adapter loaded before the fork",
        one=asgi_adapter_without_lazy_apps,
    ),
    Rule("P408", Weight.MACHINE, "memory limit not possible here", one=memory_limit_unavailable),
    Rule("W602", Weight.WARNING, "app vassal without need-app", one=app_without_need_app),
    Rule("W603", Weight.WARNING, "output hidden from the Emperor", one=output_hidden),
    Rule("W605", Weight.WARNING, "stats or status page beyond loopback", one=beyond_loopback),
    Rule("X300", Weight.MACHINE, "http-to no vassal binds", many=unbound_backend),
    Rule("X301", Weight.ERROR, "two vassals bind one address", many=address_clash),
)
