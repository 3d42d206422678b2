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

from batchstock.core import OPERATION_TYPES

ALL = "*"
FLAGS = ("edit", "cancel", "export", "download_others", "see_costs")


@dataclass(frozen=True)
class Rights:
    """What one user may do. `storages` and `types` are None when unrestricted."""

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
