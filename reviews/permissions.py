"""Who may call what (SPEC section 2). Object scoping lives in the viewsets' querysets."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from reviews.authentication import integration_of
from reviews.models import COMPLIANCE_GROUP, REVIEWERS_GROUP


def is_staff_reader(user) -> bool:
    """People who may read items through the API: reviewers, compliance, superusers."""
    if not (user and user.is_authenticated and user.is_active):
        return False
    if user.is_superuser:
        return True
    return user.groups.filter(name__in=[REVIEWERS_GROUP, COMPLIANCE_GROUP]).exists()


def sees_everything(user) -> bool:
    """Superusers and compliance staff read every queue."""
    return bool(user and user.is_authenticated) and (
        user.is_superuser or user.groups.filter(name=COMPLIANCE_GROUP).exists()
    )


class IsIntegration(BasePermission):
    message = "This endpoint is for integrations (Authorization: Api-Key <key>)."

    def has_permission(self, request, view) -> bool:
        return integration_of(request) is not None


class IsStaffReader(BasePermission):
    message = "Reviewers, compliance staff and admins only."

    def has_permission(self, request, view) -> bool:
        return is_staff_reader(request.user)


class IsReviewer(BasePermission):
    message = "Reviewers only."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active) and (
            user.is_superuser or user.groups.filter(name=REVIEWERS_GROUP).exists()
        )
