from __future__ import annotations

from datetime import UTC

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField

from reviews.models import ItemKind, ItemStatus, ReviewItem


class UTCDateTimeField(IsoDateTimeField):
    """An ISO 8601 time, normalised to UTC here so that no database sees an offset
    it refuses (PostgreSQL stops at ±15:59) or a date past year 9999."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return value
        try:
            return value.astimezone(UTC)
        except (OverflowError, ValueError) as exc:
            raise forms.ValidationError(
                "Enter a date and time between years 1 and 9999.", code="invalid"
            ) from exc


class UTCDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UTCDateTimeField


class ItemFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ItemStatus.choices)
    queue = django_filters.CharFilter(field_name="queue__slug", max_length=100)
    kind = django_filters.ChoiceFilter(choices=ItemKind.choices)
    external_id = django_filters.CharFilter(max_length=255)
    created_after = UTCDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UTCDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = ReviewItem
        fields = ["status", "queue", "kind", "external_id", "created_after", "created_before"]
