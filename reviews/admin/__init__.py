"""The admin: the reviewer workspace, the item list, setup, records and deliveries.

Importing this package registers every admin of the project (Django's admin
autodiscovery does), then guards the admins of other apps the same way.
"""

from __future__ import annotations

from django.contrib import admin

from reviews.admin import audit, deliveries, items, quality, records, setup
from reviews.admin.base import GuardedAdmin

__all__ = ["audit", "deliveries", "items", "quality", "records", "setup"]

admin.site.site_header = "HITL review gates"
admin.site.site_title = "HITL review gates"
admin.site.index_title = "Review workspace"
audit.install(admin.site)


def guard_other_admins() -> None:
    """The admins of other apps (django-axes' lockout pages, auth groups) parse their
    query strings the same way: re-register each with the GuardedAdmin mixin."""
    for model, model_admin in list(admin.site._registry.items()):
        if not isinstance(model_admin, GuardedAdmin):
            guarded = type(f"Guarded{type(model_admin).__name__}", (GuardedAdmin, type(model_admin)), {})
            admin.site.unregister(model)
            admin.site.register(model, guarded)


guard_other_admins()
