"""The checker's vocabulary: problems as users see them, and rules as the table holds them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from enum import Enum, StrEnum
from pathlib import Path

from toolkit.catalog import Catalog
from toolkit.uwsgi_config import Config, LocalMachine, Setting
from toolkit.uwsgi_options import OptionTable


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


class Weight(Enum):
    """A rule's severity: fixed, or MACHINE (depends on where the file is meant to run)."""

    ERROR = "error"
    WARNING = "warning"
    MACHINE = "machine"


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    rule: str
    severity: Severity
    message: str
    hint: str

    def __str__(self) -> str:
        hint = f" ({self.hint})" if self.hint else ""
        return f"{self.file}:{self.line}: {self.rule} {self.severity.value}: {self.message}{hint}"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Finding:
    file: Path
    line: int
    message: str
    hint: str = ""


@dataclass(frozen=True)
class Context:
    catalog: Catalog
    table: OptionTable
    machine: LocalMachine
    here: bool = False
    building: Path | None = None
    """A release's folder that its release phase is about to fill (collectstatic): a path
    under it that does not exist yet is not missing."""


@dataclass(frozen=True)
class Rule:
    id: str
    weight: Weight
    summary: str
    one: Callable[[Config, Context], Iterator[Finding]] | None = None
    many: Callable[[list[Config], Context], Iterator[Finding]] | None = None

    def severity(self, context: Context) -> Severity:
        if self.weight is Weight.MACHINE:
            return Severity.ERROR if context.here else Severity.WARNING
        return Severity(self.weight.value)


def at(setting: Setting, message: str, hint: str = "") -> Finding:
    return Finding(setting.file, setting.line, message, hint)
