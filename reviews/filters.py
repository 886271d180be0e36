from __future__ import annotations

import django_filters

from reviews.models import ItemKind, ItemStatus, ReviewItem


class ItemFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ItemStatus.choices)
    queue = django_filters.CharFilter(field_name="queue__slug", max_length=100)
    kind = django_filters.ChoiceFilter(choices=ItemKind.choices)
    external_id = django_filters.CharFilter(max_length=255)
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = ReviewItem
        fields = ["status", "queue", "kind", "external_id", "created_after", "created_before"]
