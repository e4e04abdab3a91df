"""Who is asking, and what they may see: roles, the pages each role opens, and the per-role rules the
data layer applies (row filters for sales, masking of phones, emails and ID numbers for manager and
analyst). Pages never decide what a user sees; the warehouse builds each role's views from these rules.
"""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("admin", "manager", "analyst", "sales")

# The pages (files under dashboard/pages/) each role's navigation shows; any other page is refused.
ROLE_PAGES: dict[str, tuple[str, ...]] = {
    "admin": ("cockpit", "channels", "customer_360", "churn", "data_quality", "catalog", "explore", "admin"),
    "manager": ("cockpit", "channels", "customer_360", "churn", "data_quality", "catalog", "explore"),
    "analyst": ("cockpit", "channels", "data_quality", "catalog", "explore"),
    "sales": ("cockpit", "customer_360", "churn"),
}

# Roles that see personal data unmasked (sales see only their own customers, unmasked).
UNMASKED_ROLES = frozenset({"admin", "sales"})


@dataclass(frozen=True)
class Principal:
    """A signed-in user as the data layer sees them. ``owner`` is the value of the ``owner`` column
    that marks a sales user's own customers and leads (their name in the CRM)."""

    username: str
    role: str
    owner: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role '{self.role}' (roles: {', '.join(ROLES)})")
        if self.role == "sales" and not self.owner:
            raise ValueError(f"sales user '{self.username}' needs an owner name (the CRM's owner value)")

    @property
    def masked(self) -> bool:
        return self.role not in UNMASKED_ROLES


# The internal caller (refresh, derived build, CLI without --user, --no-auth serving): sees everything.
SYSTEM = Principal("system", "admin")


def pages_for(role: str) -> tuple[str, ...]:
    return ROLE_PAGES.get(role, ())
