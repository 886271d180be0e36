"""Who may call which endpoint (SPEC section 2); who may see which item is `reviews.access`."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from reviews.access import is_reviewer, is_staff_reader
from reviews.api.authentication import integration_of


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
        return is_reviewer(request.user)
