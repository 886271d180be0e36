from django.contrib.auth.models import Group


def test_roles_exist_with_permissions(db):
    reviewers = Group.objects.get(name="Reviewers")
    codenames = set(reviewers.permissions.values_list("codename", flat=True))
    assert {"view_reviewitem", "add_decision"} <= codenames
    assert "change_decision" not in codenames
    policy_admins = set(
        Group.objects.get(name="Policy admins").permissions.values_list("codename", flat=True)
    )
    assert {"change_gaterule", "add_gatecondition", "change_queue"} <= policy_admins
    assert not {"add_decision", "change_decision", "delete_decision"} & policy_admins
    compliance = set(Group.objects.get(name="Compliance").permissions.values_list("codename", flat=True))
    assert all(code.startswith("view_") for code in compliance)
    assert "view_historicalreviewitem" in compliance
