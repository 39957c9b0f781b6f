"""Rules on internal routing: route conditions and actions this build knows (core/routing.c)."""

from __future__ import annotations

from collections.abc import Iterator

from toolkit.check.keys import valued
from toolkit.check.model import Context, Finding, at
from toolkit.check.options import routing_built
from toolkit.errors import did_you_mean
from toolkit.uwsgi_config import Config, Setting
from toolkit.uwsgi_options import ValueKind


def route_problems(config: Config, context: Context) -> Iterator[tuple[Setting, str, str]]:
    """uwsgi_opt_add_route() (core/routing.c): `[subject ]action:args`; route-if takes
    `condition:args` as its subject; an unknown condition or action stops the start. A
    build without routing has no route to judge (U106 says so, once)."""
    if not routing_built(context):
        return
    for setting in valued(config, context, ValueKind.ROUTE):
        style = context.table.target(setting.key).strip('"')
        if style == "NULL":
            continue
        if style == "run":
            action = setting.value
        else:
            subject, space, action = setting.value.partition(" ")
            if not space:
                yield setting, "R501", "route rule without an action ('invalid route syntax')"
                continue
            if style in {"if", "if-not"}:
                condition, colon, _ = subject.partition(":")
                if not colon:
                    yield setting, "R501", "route condition without ':' ('invalid syntax')"
                    continue
                if condition not in context.table.route_conditions:
                    yield setting, "R500", condition
                    continue
        name, colon, _ = action.partition(":")
        if not colon:
            yield setting, "R501", f"route action {action!r} has no ':' ('invalid route syntax')"
        elif name not in context.catalog.routers:
            yield setting, "R501", f"unknown route action {name!r}"


def unknown_route_condition(config: Config, context: Context) -> Iterator[Finding]:
    for setting, rule, condition in route_problems(config, context):
        if rule == "R500":
            yield at(
                setting,
                f"unknown route condition {condition!r}",
                did_you_mean(condition, context.table.route_conditions, "e.g. equal, startswith"),
            )


def bad_route(config: Config, context: Context) -> Iterator[Finding]:
    for setting, rule, message in route_problems(config, context):
        if rule == "R501":
            name = message.removeprefix("unknown route action ").strip("'")
            hint = did_you_mean(name, context.catalog.routers, "see `uwsgi --router-list`")
            yield at(setting, message, hint if message.startswith("unknown") else "")
