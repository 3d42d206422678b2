"""Access rights per user, from the `[users.NAME]` tables of `batchstock.toml`.

With no users defined, everyone may do everything, so a one-person salon needs no config.
Once any user is defined, a user who is not listed has no rights at all.

```toml
[users.anna]
email = "anna@example.com"
storages = ["Products", "Branch 2 shelf"]   # or "*" for all (the default)
types = ["sale", "write-off"]               # or "*" for all (the default)
edit = true
cancel = false
export = true
download_others = false
see_costs = false
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from batchstock.core import OPERATION_TYPES, Cell, OperationDraft, Problem
from batchstock.values import display_text, to_text

ALL = "*"
FLAGS = ("edit", "cancel", "export", "download_others", "see_costs")
KEYS = frozenset({"email", "storages", "types", *FLAGS})


@dataclass(frozen=True)
class Rights:
    """Rights of one user. `storages` and `types` are None when unrestricted."""

    user: str
    known: bool = True
    storages: frozenset[str] | None = None
    types: frozenset[str] | None = None
    edit: bool = True
    cancel: bool = True
    export: bool = True
    download_others: bool = True
    see_costs: bool = True
    email: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def may_use_storage(self, name: str) -> bool:
        return self.known and (self.storages is None or name.casefold() in self.storages)

    def may_create(self, operation_type: str) -> bool:
        return self.known and (self.types is None or operation_type in self.types)

    def has(self, flag: str) -> bool:
        """Return whether the user holds one of the yes/no rights in FLAGS."""
        return self.known and bool(getattr(self, flag))


def _names(value: Any, casefold: bool) -> frozenset[str] | None:
    if value is None or value == ALL or (isinstance(value, list) and ALL in value):
        return None
    items = [value] if isinstance(value, str) else list(value)
    return frozenset(str(v).casefold() if casefold else str(v).lower() for v in items)


def rights_for(users: dict[str, dict[str, Any]], user: str) -> Rights:
    """Return the rights of `user` under the configured `users` tables."""
    if not users:
        return Rights(user)
    entry = users.get(user)
    if entry is None:
        return Rights(user, known=False, storages=frozenset(), types=frozenset(),
                      edit=False, cancel=False, export=False, download_others=False,
                      see_costs=False)
    types = _names(entry.get("types"), casefold=False)
    if types is not None:
        unknown = types - set(OPERATION_TYPES)
        if unknown:
            raise ValueError(
                f"[users.{user}] types lists {', '.join(sorted(unknown))}; use arrival, "
                "sale, relocation or write-off"
            )
    return Rights(
        user,
        storages=_names(entry.get("storages"), casefold=True),
        types=types,
        email=entry.get("email"),
        **{flag: bool(entry.get(flag, False)) for flag in FLAGS},
    )


def check_users(users: Any) -> None:
    """Check the `[users]` tables of the config; raise ValueError naming the first bad key.

    Each flag must be true or false, `storages` and `types` "*" or a list of names, and
    `types` may list only arrival, sale, relocation and write-off.
    """
    if not isinstance(users, dict):
        raise ValueError("[users] must be a table of [users.NAME] tables")
    for user, entry in users.items():
        if not isinstance(entry, dict):
            raise ValueError(f"users.{user} must be a table such as [users.{user}]")
        unknown = sorted(set(entry) - KEYS)
        if unknown:
            raise ValueError(
                f"[users.{user}] has unknown key {unknown[0]!r}; the keys are "
                f"{', '.join(sorted(KEYS))}"
            )
        for flag in FLAGS:
            if flag in entry and not isinstance(entry[flag], bool):
                raise ValueError(
                    f"[users.{user}] {flag} = {entry[flag]!r} is not true or false"
                )
        for key in ("storages", "types"):
            value = entry.get(key, ALL)
            names = [value] if isinstance(value, str) else value
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ValueError(
                    f'[users.{user}] {key} must be "*" or a list of names, not {value!r}'
                )
        if "email" in entry and not isinstance(entry["email"], str):
            raise ValueError(f"[users.{user}] email must be text")
        rights_for(users, user)


def _denial(rights: Rights, right: str) -> str:
    """Return the start of a message that `rights.user` lacks `right`."""
    if not rights.known:
        return (
            f'user "{rights.user}" is not listed in the [users] of batchstock.toml and '
            f"so may not {right}"
        )
    return f'user "{rights.user}" may not {right}'


def check_draft_rights(rights: Rights, draft: OperationDraft, operation_type: str | None,
                       file: str) -> list[Problem]:
    """Check that the submitter may create this type of operation in its storages.

    Problems sit at the type cell and at each storage cell the user may not use.
    """
    problems = []
    type_cell = draft.header.get("type")
    if operation_type is not None and not rights.may_create(operation_type):
        problems.append(_problem(
            file, type_cell, "type_denied",
            f"{_denial(rights, f'create or change {_with_article(operation_type)}')} "
            f"(right: types in [users.{rights.user}]); ask an administrator to add "
            f"{operation_type} to it",
        ))
    names = ("storage", "to_storage") if operation_type == "relocation" else ("storage",)
    for name in names:
        cell = draft.header.get(name)
        storage = to_text(cell.value) if cell is not None else None
        if storage is not None and not rights.may_use_storage(storage):
            problems.append(_storage_problem(rights, file, cell, storage))
    return problems


def check_change_rights(rights: Rights, action: str, id_cell: Cell, operation_type: str,
                        storages: list[str], file: str) -> list[Problem]:
    """Check that the submitter may `action` ("edit" or "cancel") a stored operation of
    this type in these storages. Every problem sits at the operation id cell."""
    problems = []
    if not rights.has(action):
        problems.append(_problem(
            file, id_cell, f"{action}_denied",
            f"{_denial(rights, f'{action} operations')} (right: {action} in "
            f"[users.{rights.user}]); ask an administrator, or someone who may",
        ))
    if not rights.may_create(operation_type):
        problems.append(_problem(
            file, id_cell, "type_denied",
            f"{_denial(rights, f'{action} {_with_article(operation_type)}')} "
            f"(right: types in [users.{rights.user}]); ask an administrator to add "
            f"{operation_type} to it",
        ))
    for storage in storages:
        if not rights.may_use_storage(storage):
            problems.append(_storage_problem(rights, file, id_cell, storage))
    return problems


def _with_article(operation_type: str) -> str:
    return f"an {operation_type}" if operation_type == "arrival" else f"a {operation_type}"


def _storage_problem(rights: Rights, file: str, cell: Cell | None, storage: str) -> Problem:
    action = f'use storage "{storage}"'
    return _problem(
        file, cell, "storage_denied",
        f"{_denial(rights, action)} (right: storages in [users.{rights.user}]); use a "
        "storage you may use, or ask an administrator",
    )


def _problem(file: str, cell: Cell | None, code: str, message: str) -> Problem:
    return Problem(
        file, cell.sheet if cell else None, cell.name if cell else None, code, message,
        display_text(cell.value) if cell else None,
    )
