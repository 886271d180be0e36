"""factory_boy factories for the domain models."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from policies.models import GateCondition, GateRule
from reviews.models import Integration, ItemKind, Queue, ReasonCode


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pw-for-tests-only")


class GroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Group
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"group-{n}")


class IntegrationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Integration
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Assistant {n}")
    slug = factory.Sequence(lambda n: f"assistant-{n}")


class QueueFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Queue
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"queue-{n}")
    name = factory.LazyAttribute(lambda q: q.slug.replace("-", " ").title())
    sla_minutes = 60
    required_approvals = 1
    checklist = factory.LazyFunction(list)


class ReasonCodeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReasonCode
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"code_{n}")
    label = factory.LazyAttribute(lambda r: r.code.replace("_", " ").capitalize())
    applies_to = factory.LazyFunction(lambda: ["reject", "edit"])


class GateRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GateRule

    name = factory.Sequence(lambda n: f"Rule {n}")
    priority = 100
    match = "all"
    outcome = "review"
    queue = factory.SubFactory(QueueFactory)
    risk_level = "medium"


class GateConditionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GateCondition

    rule = factory.SubFactory(GateRuleFactory)
    field = "signals.confidence"
    op = "lt"
    value = 0.7


def submission(**overrides) -> dict:
    """A valid submission body; keyword arguments replace top-level keys."""
    body = {
        "external_id": "conv-1/turn-1",
        "kind": ItemKind.OUTPUT,
        "input": {"prompt": "What are your opening hours?"},
        "output": {"text": "We are open 9:00 to 17:00, Monday to Friday."},
        "context": {},
        "signals": {"confidence": 0.95, "category": "general"},
        "metadata": {},
    }
    body.update(overrides)
    return body


def action_submission(**overrides) -> dict:
    body = submission(
        kind=ItemKind.ACTION,
        input={"prompt": "Refund order 1182"},
        output={"text": "I will refund 420.00 EUR."},
        action={"type": "payment.refund", "params": {"order": "1182", "amount": 420.0, "currency": "EUR"}},
        signals={"confidence": 0.9, "category": "finance"},
    )
    body.update(overrides)
    return body
