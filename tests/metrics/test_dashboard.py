"""The metrics dashboard in the admin (metrics/dashboard.py): its figures are the selectors'
(and the ones worked out by hand for the story in conftest.py), who may see which queues,
the date range, the backlog snapshots and their backfill, weekly summaries, the
rubber-stamping and overload flags, incidents linked to what let them through, a fixed
number of queries, and a page the Content-Security-Policy allows whole."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from celery.schedules import crontab
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from hitl_project.celery import app as celery_app
from metrics import selectors, snapshots, tasks
from metrics.models import QueueSnapshot, WeeklySummary
from policies.models import GateRule
from reviews import services
from reviews.models import Decision, Incident, ReviewItem
from tests.conftest import make_reviewer
from tests.factories import GateConditionFactory, GateRuleFactory, QueueFactory, ReasonCodeFactory, submission
from tests.metrics import expected
from tests.metrics.conftest import clock

DASHBOARD = "/admin/metrics/dashboard/"


def open_dashboard(client, user, now, **params):
    client.force_login(user)
    with clock(now):
        return client.get(DASHBOARD, params)


def figure(html: str, slug: str, name: str) -> str:
    """What the queue table shows for one figure of one queue."""
    row = re.search(rf'<tr id="queue-{re.escape(slug)}".*?</tr>', html, re.S).group(0)
    cell = re.search(rf'data-figure="{name}">(.*?)</td>', row, re.S).group(1)
    return re.sub(r"<[^>]+>", "", cell).strip()


class History:
    """Items submitted, claimed and decided through the services at chosen moments."""

    def __init__(self, integration, start: datetime):
        self.integration, self.start = integration, start
        ReasonCodeFactory(code="factual_error", applies_to=["reject", "edit"])

    def at(self, minutes: float) -> datetime:
        return self.start + timedelta(minutes=minutes)

    def submit(self, minutes: float, category: str = "general") -> ReviewItem:
        with clock(self.at(minutes)):
            body = submission(signals={"category": category})
            return services.submit_item(integration=self.integration, payload=body).item

    def claim(self, item, user, minutes: float) -> None:
        with clock(self.at(minutes)):
            services.claim(item=item, user=user)

    def decide(self, item, user, action: str, minutes: float, *, spent: float | None = None):
        """Decide at `minutes`, having claimed the item `spent` seconds before (none: no claim)."""
        if spent is not None:
            with clock(self.at(minutes) - timedelta(seconds=spent)):
                services.claim(item=item, user=user)
        extra = {"reason_codes": ["factual_error"]} if action in ("reject", "edit") else {}
        if action == "edit":
            extra["edited_output"] = {"text": "Edited."}
        with clock(self.at(minutes)):
            return services.decide(item=item, user=user, action=action, justification="Checked.", **extra)

    def decisions(self, user, actions: list[str], *, minutes: float, spent: list[float | None] | None = None,
                  category: str = "general") -> None:  # fmt: skip
        """One item each, in order: submitted at `minutes`, then every ten minutes, and each
        decided nine minutes after its submission."""
        spent = spent or [None] * len(actions)
        for index, (action, seconds) in enumerate(zip(actions, spent, strict=True)):
            item = self.submit(minutes + index * 10, category)
            self.decide(item, user, action, minutes + index * 10 + 9, spent=seconds)


@pytest.fixture
def history(integration, queue):
    GateRuleFactory(name="Everything", priority=50, queue=queue)
    start = (timezone.now() - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    return History(integration, start)


# --- The figures --------------------------------------------------------------------------------


def test_the_queue_figures_are_the_selectors_and_the_ones_worked_out_by_hand(client, story, compliance):
    response = open_dashboard(client, compliance, story.now, days="7")
    assert response.status_code == 200
    context = response.context
    window = context["window"]
    assert (window.since, window.until) == (story.now - timedelta(days=7), story.now)
    queues = [row.queue for row in context["queues"]]
    assert [q.slug for q in queues] == ["expert", "four-eyes", "general"]  # by name
    shown = [row.stats for row in context["queues"]]
    assert shown == selectors.queue_stats(
        queues=queues, since=window.since, until=window.until, now=story.now
    )
    # G0 is eight days old: the week's figures are the day's.
    assert shown == [expected.QUEUES[slug] for slug in ("expert", "four-eyes", "general")]

    html = response.content.decode()
    assert figure(html, "general", "decisions") == "3"
    assert figure(html, "general", "approval_rate") == "33%"
    assert figure(html, "general", "median_review_seconds") == "30 min"  # 1800 s
    assert figure(html, "general", "p90_review_seconds") == "1 h 42 min"  # 6120 s
    assert figure(html, "general", "backlog") == "2"
    assert figure(html, "general", "oldest_pending_seconds") == "2 h 00 min"
    assert figure(html, "general", "sla_breaches") == "2"
    assert figure(html, "expert", "oldest_pending_seconds") == "–"
    glance = context["glance"]
    assert (glance["decisions"], glance["backlog"], glance["sla_breaches"]) == (7, 2, 4)


def test_workload_is_each_reviewers_decisions_time_and_share_of_the_queue(
    client, story, compliance, reviewer, other_reviewer
):
    context = open_dashboard(client, compliance, story.now, days="7").context
    rows = {
        (group.queue.slug, row["reviewer"]): tuple(
            row[k] for k in ("decisions", "seconds_spent", "share", "overloaded")
        )
        for group in context["workload"]
        for row in group.rows
    }
    assert rows == {
        # general: G1 approve (600 s), G3 reject (no claim), G4 escalate (300 s); G2 edit (1200 s)
        ("general", "reviewer"): (3, 900, 0.75, False),
        ("general", "other_reviewer"): (1, 1200, 0.25, False),
        ("four-eyes", "reviewer"): (3, 600, 0.5, False),
        ("four-eyes", "other_reviewer"): (3, 600, 0.5, False),
        ("expert", "other_reviewer"): (1, 1800, 1.0, False),
    }
    # Four decisions in general: too few to call anyone overloaded.
    assert all(group.overload_share is None for group in context["workload"])
    window = context["window"]
    assert context["gold"] == selectors.gold_agreement(
        queues=[row.queue for row in context["queues"]], since=window.since, until=window.until
    )


def test_incidents_past_reviewers_are_counted_and_linked_to_decision_reviewer_and_rule_version(
    client, story, compliance, reviewer, other_reviewer
):
    response = open_dashboard(client, compliance, story.now, days="7")
    context, html = response.context, response.content.decode()
    # G1 (high) and G0 (low, three days old) through reviewer in general; F2 (medium) and G4
    # (critical) through other_reviewer; A1 was auto-approved: no reviewer let it through.
    slipped = {row.queue.slug: (row.slipped, row.serious) for row in context["queues"]}
    assert slipped == {"general": (2, 1), "four-eyes": (1, 0), "expert": (1, 1)}
    by_reviewer = {
        row["reviewer"]: (row["incidents"], row["serious"]) for row in context["incidents_by_reviewer"]
    }
    assert by_reviewer == {"reviewer": (2, 1), "other_reviewer": (2, 1)}
    assert figure(html, "general", "incidents").startswith("2")

    rows = {row.incident.item_id: row for row in context["incidents"]}
    assert set(rows) == {story.items[name].pk for name in ("G0", "G1", "F2", "G4")}
    g1 = rows[story.items["G1"].pk]
    decision = Decision.objects.get(item=story.items["G1"], is_final=True)
    assert g1.decision_url == reverse("admin:reviews_decision_change", args=[decision.pk])
    assert g1.reviewer == "reviewer"
    assert (
        g1.reviewer_url == f"{reverse('admin:reviews_decision_changelist')}?reviewer__id__exact={reviewer.pk}"
    )
    rule = GateRule.objects.get(name="General")
    version = rule.history.get(version=1)
    [link] = g1.rules
    assert link.label == "General, version 1"
    assert link.url == reverse("admin:policies_gaterule_simple_history", args=[rule.pk, version.history_id])
    for url in (g1.decision_url, g1.reviewer_url, link.url, g1.item_url):
        assert f'href="{url}"'.replace("&", "&amp;") in html
        assert client.get(url).status_code == 200, url


def test_a_rule_edited_since_links_to_the_version_that_gated_the_item(client, story, compliance):
    rule = GateRule.objects.get(name="General")
    rule.description = "Edited since."
    rule.version += 1
    rule.save()
    context = open_dashboard(client, compliance, story.now, days="7").context
    [link] = next(row for row in context["incidents"] if row.incident.item_id == story.items["G1"].pk).rules
    first = rule.history.get(version=1)
    assert link.url == reverse("admin:policies_gaterule_simple_history", args=[rule.pk, first.history_id])


def test_a_rule_without_its_version_on_record_links_to_its_history_or_to_nothing(client, story, compliance):
    item = story.items["G1"]
    rule = GateRule.objects.get(name="General")
    ReviewItem.objects.filter(pk=item.pk).update(
        matched_rules=[{"id": rule.pk, "name": "General", "version": 99}, {"id": 10**9, "name": "Gone"}]
    )
    context = open_dashboard(client, compliance, story.now, days="7").context
    links = next(row for row in context["incidents"] if row.incident.item_id == item.pk).rules
    assert [(link.label, link.url) for link in links] == [
        ("General, version 99", reverse("admin:policies_gaterule_history", args=[rule.pk])),
        ("Gone", None),
    ]


# --- Who sees what -----------------------------------------------------------------------------


def test_compliance_and_superusers_see_every_queue(client, story, compliance, superuser):
    for user in (compliance, superuser):
        context = open_dashboard(client, user, story.now).context
        assert [row.queue.slug for row in context["queues"]] == ["expert", "four-eyes", "general"]
        assert context["sees_everything"]


def test_a_reviewer_sees_only_their_queues(client, story, reviewer, other_reviewer):
    response = open_dashboard(client, reviewer, story.now, days="7")
    assert response.status_code == 200
    context, html = response.context, response.content.decode()
    assert [row.queue.slug for row in context["queues"]] == ["four-eyes", "general"]
    assert "Expert review" not in html and 'id="queue-expert"' not in html
    assert {group.queue.slug for group in context["workload"]} == {"four-eyes", "general"}
    assert story.items["G4"].pk not in {row.incident.item_id for row in context["incidents"]}
    assert [card.queue.slug for card in context["weeks"]] == ["four-eyes", "general"]
    # other_reviewer also reviews expert, and sees it.
    other = open_dashboard(client, other_reviewer, story.now).context
    assert [row.queue.slug for row in other["queues"]] == ["expert", "four-eyes", "general"]


def test_a_reviewer_of_no_queue_sees_an_empty_dashboard(client, story, outsider):
    outsider.is_staff = True
    outsider.save()
    response = open_dashboard(client, outsider, story.now)
    assert response.status_code == 200
    assert response.context["queues"] == [] and response.context["incidents"] == []


def test_policy_admins_and_staff_without_a_role_are_refused(client, story, policy_admin):
    assert open_dashboard(client, policy_admin, story.now).status_code == 403
    policy_admin.groups.clear()
    assert open_dashboard(client, policy_admin, story.now).status_code == 403


def test_anonymous_visitors_are_sent_to_the_login(client):
    response = client.get(DASHBOARD)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_admin_index_links_the_dashboard_for_those_who_may_see_it(
    client, reviewer, compliance, policy_admin
):
    for user, shown in ((reviewer, True), (compliance, True), (policy_admin, False)):
        client.force_login(user)
        index = client.get(reverse("admin:index")).content.decode()
        assert ('id="metrics-dashboard-link"' in index) is shown, user
        if shown:
            assert f'href="{reverse("admin:metrics_dashboard")}"' in index
    assert reverse("admin:metrics_dashboard") == DASHBOARD


# --- The range -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "2026-13-01"}, "Enter a valid date."),
        ({"until": "yesterday"}, "Enter a valid date."),
        ({"since": "2026-06-10", "until": "2026-06-01"}, "The range must start before it ends."),
        ({"since": "2020-01-01", "until": "2026-01-01"}, "Choose at most 366 days."),
        ({"until": "9999-12-31"}, "That date is out of range."),
        ({"since": "0001-01-01", "until": "0001-01-02"}, ""),
        ({"days": "9"}, "Select a valid choice."),
        ({"days": "x" * 5000}, "Select a valid choice."),
    ],
)
def test_a_bad_range_is_a_form_error_never_a_server_error(client, compliance, params, message):
    client.force_login(compliance)
    response = client.get(DASHBOARD, params)
    assert response.status_code == 200
    html = response.content.decode()
    if message:
        assert 'id="dashboard-form-error"' in html and message in html
        assert "queues" not in response.context
    else:  # a range at the very start of the calendar is a range, with nothing in it
        assert response.context["glance"]["decisions"] == 0


def test_a_range_of_dates_runs_from_the_first_day_to_the_end_of_the_last(client, compliance):
    client.force_login(compliance)
    window = client.get(DASHBOARD, {"since": "2026-06-01", "until": "2026-06-07"}).context["window"]
    assert window.since == datetime(2026, 6, 1, tzinfo=UTC)
    assert window.until == datetime(2026, 6, 8, tzinfo=UTC)
    presets = client.get(DASHBOARD, {"days": "30"}).context
    assert presets["window"].until - presets["window"].since == timedelta(days=30)
    assert presets["preset"] == 30
    default = client.get(DASHBOARD).context
    assert default["window"].until - default["window"].since == timedelta(days=7)
    assert default["form"].initial["until"] == timezone.now().date()


# --- Snapshots, backfill, weekly summaries --------------------------------------------------------


@pytest.fixture
def backlog_story(history, queue, reviewer):
    """On the hour H (a day ago), general (SLA 60 min, at risk at 30):
    A enters H+10m, claimed H+50m, approved H+55m; B enters H+20m and waits;
    C enters H+90m, rejected H+100m; D enters H+105m, claimed H+110m and still held.
    A second queue, `quiet`, never has anything."""
    items = {"A": history.submit(10), "B": history.submit(20)}
    history.decide(items["A"], reviewer, "approve", 55, spent=5 * 60)
    items["C"] = history.submit(90)
    history.decide(items["C"], reviewer, "reject", 100)
    items["D"] = history.submit(105)
    history.claim(items["D"], reviewer, 110)
    QueueFactory(slug="quiet", name="Quiet")
    return items


def snapshot_figures(queue, moment):
    row = QueueSnapshot.objects.get(queue=queue, taken_at=moment)
    return (row.pending, row.in_review, row.at_risk, row.past_sla, row.oldest_pending_seconds)


def test_backfill_reconstructs_the_backlog_at_each_step_from_the_items(history, backlog_story, queue):
    start = history.start
    now = start + timedelta(hours=5, minutes=7)
    done = snapshots.backfill(days=1, every_minutes=60, now=now)
    # Every hour on the hour from H-18h to H+5h, for both queues.
    assert (done.moments, done.written, done.kept) == (24, 48, 0)
    assert QueueSnapshot.objects.count() == 48
    assert snapshot_figures(queue, start) == (0, 0, 0, 0, None)
    # H+1h: B waits (40 min, past half its SLA); A was decided at H+55m.
    assert snapshot_figures(queue, start + timedelta(hours=1)) == (1, 0, 1, 0, 40 * 60)
    # H+2h: B past its deadline (H+80m); D in review since H+110m; C decided at H+100m.
    assert snapshot_figures(queue, start + timedelta(hours=2)) == (1, 1, 0, 1, 100 * 60)
    # H+3h: D past its deadline (H+165m) too.
    assert snapshot_figures(queue, start + timedelta(hours=3)) == (1, 1, 0, 2, 160 * 60)
    quiet = QueueSnapshot.objects.filter(queue__slug="quiet")
    assert quiet.count() == 24 and set(quiet.values_list("pending", "in_review")) == {(0, 0)}

    again = snapshots.backfill(days=1, every_minutes=60, now=now)
    assert (again.written, again.kept) == (0, 48)
    assert QueueSnapshot.objects.count() == 48


def test_backfill_leaves_a_step_that_has_a_snapshot_alone(history, backlog_story, queue):
    start = history.start
    taken = QueueSnapshot.objects.create(
        taken_at=start + timedelta(hours=2, minutes=30),
        queue=queue,
        pending=7,
        in_review=0,
        at_risk=0,
        past_sla=0,
    )
    with clock(start + timedelta(hours=5, minutes=7)):
        out = io.StringIO()
        call_command("backfill_snapshots", days=1, every=60, stdout=out)
    assert "47 written over 24 steps of 60 minutes (1 already there)" in out.getvalue()
    assert not QueueSnapshot.objects.filter(queue=queue, taken_at=start + timedelta(hours=2)).exists()
    assert QueueSnapshot.objects.get(pk=taken.pk).pending == 7


def test_backfill_refuses_a_range_it_cannot_take(db):
    for args in (["--days", "0"], ["--days", "400"], ["--days", "1", "--every", "0"]):
        with pytest.raises(Exception, match="must be between"):
            call_command("backfill_snapshots", *args, stdout=io.StringIO())


def test_the_snapshot_task_takes_the_backlog_now_once_a_minute(history, backlog_story, queue):
    now = timezone.now().replace(second=30)
    with clock(now):
        assert tasks.take_snapshots.apply().get() == 2
        assert tasks.take_snapshots.apply().get() == 0  # the same minute: nothing more
    moment = now.replace(second=0, microsecond=0)
    live = ReviewItem.objects.filter(queue=queue)
    # B pending past its SLA, D in review past it (a day ago): what the queue holds now.
    assert snapshot_figures(queue, moment) == (
        live.filter(status="pending").count(),
        live.filter(status="in_review").count(),
        0,
        2,
        int((moment - backlog_story["B"].entered_queue_at).total_seconds()),
    )
    assert snapshot_figures(queue, moment)[:2] == (1, 1)
    with clock(now + timedelta(minutes=1)):
        assert snapshots.take_snapshots() == 2
    assert QueueSnapshot.objects.count() == 4


def test_beat_runs_the_snapshots_and_the_weekly_summary_by_name():
    schedule = celery_app.conf.beat_schedule
    assert schedule["take-snapshots"]["task"] == "metrics.take_snapshots"
    assert schedule["weekly-summary"]["task"] == "metrics.weekly_summary"
    assert schedule["weekly-summary"]["schedule"] == crontab(day_of_week=1, hour=0, minute=30)
    assert schedule["take-snapshots"]["schedule"] == crontab(minute="*/15")  # HITL_SNAPSHOT_MINUTES
    assert {"metrics.take_snapshots", "metrics.weekly_summary"} <= set(celery_app.tasks)


@pytest.fixture
def last_week(integration, queue, reviewer):
    """In the week before this one: two items approved and one rejected in general, and an
    incident on one of the approved ones."""
    GateRuleFactory(name="Everything", priority=50, queue=queue)
    week = snapshots.previous_week()
    history = History(integration, week + timedelta(days=2))
    items = [history.submit(minutes) for minutes in (0, 10, 20)]
    history.decide(items[0], reviewer, "approve", 30, spent=60)
    history.decide(items[1], reviewer, "approve", 40, spent=120)
    history.decide(items[2], reviewer, "reject", 50)
    with clock(history.at(60)):
        incident = services.report_incident(item=items[0], severity="high", description="Harm.")
    Incident.objects.filter(pk=incident.pk).update(created_at=history.at(60))  # its default is the real time
    QueueFactory(slug="quiet", name="Quiet")
    return week


def test_the_weekly_summary_keeps_last_weeks_figures_once(last_week, queue):
    assert tasks.weekly_summary.apply().get() == 2
    summary = WeeklySummary.objects.get(queue=queue)
    assert summary.week_start == last_week.date()
    figures = summary.figures
    assert figures["week_start"] == last_week.date().isoformat()
    assert (figures["decisions"], figures["approval_rate"], figures["rejection_rate"]) == (3, 2 / 3, 1 / 3)
    assert (figures["incidents"], figures["incidents_past_reviewers"], figures["backlog_at_end"]) == (1, 1, 0)
    assert figures["median_review_seconds"] == 30 * 60  # entered at 0, 10, 20; decided at 30, 40, 50
    assert "backlog" not in figures and "oldest_pending_seconds" not in figures
    assert WeeklySummary.objects.get(queue__slug="quiet").figures["decisions"] == 0

    # Again (beat twice, or a retry): nothing new, nothing changed.
    assert tasks.weekly_summary.apply().get() == 0
    assert WeeklySummary.objects.count() == 2
    assert WeeklySummary.objects.get(queue=queue).figures == figures


def test_a_weekly_summary_is_for_a_whole_week_that_has_ended(db):
    monday = snapshots.previous_week()
    with pytest.raises(ValueError, match="Monday"):
        snapshots.write_weekly_summaries(week=monday + timedelta(days=1))
    with pytest.raises(ValueError, match="not ended"):
        snapshots.write_weekly_summaries(week=monday + selectors.WEEK)


def test_the_dashboard_shows_last_weeks_summary_beside_this_week(client, compliance, last_week, queue):
    before = open_dashboard(client, compliance, timezone.now()).context
    [card] = [card for card in before["weeks"] if card.queue == queue]
    assert not card.stored  # computed now: beat has not summarised it yet
    assert next(line for line in card.lines if line.label == "Decisions").last == 3

    snapshots.write_weekly_summaries(week=last_week)
    summary = WeeklySummary.objects.get(queue=queue)
    summary.figures = {**summary.figures, "decisions": 41}  # so the page can only have read it here
    summary.save()
    after = open_dashboard(client, compliance, timezone.now())
    [card] = [card for card in after.context["weeks"] if card.queue == queue]
    decisions = next(line for line in card.lines if line.label == "Decisions")
    assert card.stored and (decisions.last, decisions.this, decisions.delta) == (41, 0, -41)
    assert "as summarised by beat on Monday" in after.content.decode()


def test_the_backlog_chart_draws_the_snapshots(client, compliance, history, backlog_story, queue):
    snapshots.backfill(days=1, every_minutes=60, now=history.start + timedelta(hours=5, minutes=7))
    # Two or three days: stretches shorter than the hour between snapshots, one point each.
    since, until = (history.start - timedelta(days=1)).date(), (history.start + timedelta(hours=6)).date()
    response = open_dashboard(
        client, compliance, history.start + timedelta(hours=6), since=since, until=until
    )
    [row] = [row for row in response.context["queues"] if row.queue == queue]
    chart = row.chart
    assert chart.points == 24 and (chart.first, chart.peak, chart.last) == (0, 2, 2)
    assert chart.y_max == 5 and chart.peak_past_sla == 2
    assert len(chart.lines) == 1 and chart.lines[0].startswith("M ")
    html = response.content.decode()
    assert html.count('<svg class="backlog-chart"') == 2  # general and quiet
    assert 'class="chart-line"' in html and 'class="chart-sla"' in html


# --- Review quality: rubber-stamping and overload -----------------------------------------------------


@pytest.fixture
def speeds(history, queue, reviewer, other_reviewer):
    """In general, under a claim: reviewer and other_reviewer take about five minutes a decision;
    `quick` takes ten seconds (5 decisions), `brisk` two and a half minutes (5), `hasty` ten seconds
    but only 4 times."""
    quick, brisk, hasty = (make_reviewer(name, queue) for name in ("quick", "brisk", "hasty"))
    history.decisions(reviewer, ["approve"] * 6, minutes=0, spent=[300, 310, 320, 330, 340, 350])
    history.decisions(other_reviewer, ["approve", "reject"] * 3, minutes=10, spent=[280, 290, 300] * 2)
    history.decisions(quick, ["approve"] * 5, minutes=20, spent=[8, 9, 10, 11, 12])
    history.decisions(brisk, ["approve"] * 5, minutes=30, spent=[150] * 5)
    history.decisions(hasty, ["approve"] * 4, minutes=40, spent=[10] * 4)
    return quick


def test_fast_reviews_are_flagged_against_the_queues_own_times(client, compliance, speeds, history, queue):
    since, until = history.start - timedelta(hours=1), history.start + timedelta(hours=8)
    rows = {row["reviewer"]: row for row in selectors.workload(queues=[queue], since=since, until=until)}
    # 26 timed decisions: nine of about 10 s, five of 150 s, twelve of about 300 s. The queue's
    # median is 150 s (the 13th and 14th), its 10th percentile 10 s; quick's median, 10 s, is
    # under a quarter of 150.
    assert rows["quick"]["median_seconds"] == 10
    assert rows["quick"]["queue_median_seconds"] == 150
    assert rows["quick"]["queue_p10_seconds"] == 10
    assert {name for name, row in rows.items() if row["fast"]} == {"quick"}
    assert rows["hasty"]["median_seconds"] == 10 and not rows["hasty"]["fast"]  # 4 decisions: too few
    assert not rows["brisk"]["fast"]  # 150 s: over a quarter of the median and the 10th percentile

    response = open_dashboard(client, compliance, history.start + timedelta(hours=8), days="7")
    flags = [(flag.kind, flag.reviewer) for flag in response.context["stamps"]]
    assert flags == [("fast", "quick")]
    html = response.content.decode()
    assert 'data-flag="fast" data-reviewer="quick"' in html
    assert "below that queue's 10th percentile, or below a quarter of its median" in html


@pytest.fixture
def runs(history, queue, reviewer, other_reviewer):
    """In general: reviewer approves 20 in a row and then rejects one; other_reviewer approves
    19, rejects one, and approves 5 more (the last 5 a run still going)."""
    history.decisions(reviewer, ["approve"] * 20 + ["reject"], minutes=0)
    history.decisions(other_reviewer, ["approve"] * 19 + ["edit"] + ["approve"] * 5, minutes=100)


def test_a_long_run_of_approvals_is_flagged_and_a_shorter_one_is_not(
    client, compliance, runs, history, queue
):
    since, until = history.start - timedelta(hours=1), history.start + timedelta(hours=8)
    found = selectors.approval_runs(queues=[queue], since=since, until=until)
    assert [(row["longest"], row["current"]) for row in found] == [(20, 0), (19, 5)]
    flagged = selectors.approval_runs(queues=[queue], since=since, until=until, at_least=20)
    assert [row["reviewer_id"] for row in flagged] == [
        Decision.objects.filter(action="reject").get().reviewer_id
    ]
    # A window that leaves out the first approval: no run of 20.
    later = history.start + timedelta(minutes=15)
    assert selectors.approval_runs(queues=[queue], since=later, until=until, at_least=20) == []

    response = open_dashboard(client, compliance, history.start + timedelta(hours=8), days="7")
    assert [(flag.kind, flag.reviewer) for flag in response.context["stamps"]] == [("run", "reviewer")]
    assert "20 approvals in a row at the longest, the latest not one" in response.content.decode()


def test_runs_count_per_queue_and_only_approvals(history, queue, reviewer, integration):
    other = QueueFactory(slug="other", name="Other")
    other.reviewer_groups.add(*queue.reviewer_groups.all())
    rule = GateRuleFactory(name="Other", priority=10, queue=other)
    GateConditionFactory(rule=rule, field="signals.category", op="eq", value="other")
    # Alternating queues: ten approvals in each, never twenty in one.
    for index in range(10):
        history.decisions(reviewer, ["approve"], minutes=index * 4)
        history.decisions(reviewer, ["approve"], minutes=index * 4 + 2, category="other")
    since, until = history.start - timedelta(hours=1), history.start + timedelta(hours=2)
    found = selectors.approval_runs(queues=[queue, other], since=since, until=until)
    assert sorted((row["queue_id"], row["longest"], row["current"]) for row in found) == sorted(
        [(queue.pk, 10, 10), (other.pk, 10, 10)]
    )


@pytest.fixture
def shares(history, queue, reviewer, other_reviewer, integration):
    """general: reviewer 10 decisions, other_reviewer 2 (12 in all); small: reviewer 8,
    other_reviewer 1 (9 in all, too few to judge)."""
    small = QueueFactory(slug="small", name="Small")
    small.reviewer_groups.add(*queue.reviewer_groups.all())
    rule = GateRuleFactory(name="Small", priority=10, queue=small)
    GateConditionFactory(rule=rule, field="signals.category", op="eq", value="small")
    history.decisions(reviewer, ["approve", "reject"] * 5, minutes=0)
    history.decisions(other_reviewer, ["approve"] * 2, minutes=20)
    history.decisions(reviewer, ["approve"] * 8, minutes=30, category="small")
    history.decisions(other_reviewer, ["approve"], minutes=40, category="small")
    return small


def test_a_reviewer_above_one_and_a_half_times_an_even_share_is_highlighted(
    client, compliance, shares, history
):
    response = open_dashboard(client, compliance, history.start + timedelta(hours=4), days="7")
    groups = {group.queue.slug: group for group in response.context["workload"]}
    general = {row["reviewer"]: row for row in groups["general"].rows}
    assert groups["general"].overload_share == 0.75  # 1.5 × 1/2
    assert general["reviewer"]["share"] == 10 / 12 and general["reviewer"]["overloaded"]
    assert not general["other_reviewer"]["overloaded"]
    assert groups["small"].overload_share is None  # 9 decisions
    assert not any(row["overloaded"] for row in groups["small"].rows)
    assert [(flag.kind, flag.reviewer, flag.queue.slug) for flag in response.context["flags"]] == [
        ("overload", "reviewer", "general")
    ]
    html = response.content.decode()
    general_html = re.search(
        r'<tbody class="workload-group" data-queue="general">.*?</tbody>', html, re.S
    ).group(0)
    assert '<tr class="overloaded" data-reviewer="reviewer">' in general_html
    assert 'class="badge badge-overload">overloaded' in general_html
    assert '<tr class="" data-reviewer="other_reviewer">' in general_html
    assert "above 1.5× an even share" in html or "above 1.5&times; an even share" in html


def test_nothing_is_flagged_where_reviews_look_ordinary(client, compliance, story):
    context = open_dashboard(client, compliance, story.now, days="7").context
    assert context["flags"] == [] and context["stamps"] == []
    assert 'id="no-rubber-stamp-flags"' in open_dashboard(client, compliance, story.now).content.decode()


# --- Queries and the page ------------------------------------------------------------------------------


def add_queues(count: int, *, start: int, integration, reviewers: list, group: Group, now: datetime) -> None:
    """`count` queues, each with decisions by every reviewer, an open item, an incident, snapshots,
    and (every other one) last week's summary."""
    last_week = snapshots.previous_week(now)
    for n in range(start, start + count):
        slug = f"q{n:02d}"
        extra = QueueFactory(slug=slug, name=f"Queue {n:02d}")
        extra.reviewer_groups.add(group)
        rule = GateRuleFactory(name=f"Rule {n}", priority=5, queue=extra)
        GateConditionFactory(rule=rule, field="signals.category", op="eq", value=slug)
        history = History(integration, now - timedelta(hours=3))
        for index, user in enumerate(reviewers):
            history.decisions(user, ["approve", "reject", "edit"], minutes=index * 5, spent=[30, None, 60],
                              category=slug)  # fmt: skip
        approved = Decision.objects.filter(queue=extra, action="approve").first().item
        with clock(now - timedelta(hours=1)):
            incident = services.report_incident(item=approved, severity="high", description="Harm.")
            services.submit_item(integration=integration, payload=submission(signals={"category": slug}))
        Incident.objects.filter(pk=incident.pk).update(created_at=now - timedelta(hours=1))
        QueueSnapshot.objects.bulk_create(
            QueueSnapshot(taken_at=now - timedelta(minutes=15 * k), queue=extra, pending=k % 3, in_review=0,
                          at_risk=0, past_sla=0)
            for k in range(1, 30)
        )  # fmt: skip
        if n % 2 == 0:
            WeeklySummary.objects.create(week_start=last_week.date(), queue=extra, figures={"decisions": n})


def test_the_number_of_queries_does_not_grow_with_queues_and_decisions(
    client, compliance, integration, queue, reviewer, other_reviewer
):
    ReasonCodeFactory(code="factual_error", applies_to=["reject", "edit"])
    group = queue.reviewer_groups.get()
    now = timezone.now()
    add_queues(2, start=0, integration=integration, reviewers=[reviewer], group=group, now=now)

    client.force_login(compliance)

    def queries() -> tuple[int, int, int]:
        with clock(now), CaptureQueriesContext(connection) as captured:
            response = client.get(DASHBOARD, {"days": "7"})
        assert response.status_code == 200
        return len(captured), len(response.context["queues"]), len(response.context["incidents"])

    small = queries()
    third = make_reviewer("third", queue)
    add_queues(18, start=2, integration=integration, reviewers=[reviewer, other_reviewer, third], group=group,
               now=now)  # fmt: skip
    large = queries()
    assert (small[1], small[2]) == (3, 2) and (large[1], large[2]) == (21, 20)
    assert small[0] == large[0]
    # Session and user, the caller's roles and queues, the admin's own context, the queue
    # figures, trend, workload (with review-speed percentiles), runs, gold, incident counts,
    # list and rule versions, permissions for rule links, and this and last week (35 on
    # PostgreSQL, 38 on SQLite when written): a fixed number, whatever the data.
    assert large[0] <= 45


def test_the_page_has_no_inline_style_or_script(client, story, compliance):
    html = open_dashboard(client, compliance, story.now, days="7").content.decode()
    assert "<svg" in html
    assert " style=" not in html and "<style" not in html
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []
    assert re.findall(r"\son[a-z]+=", html) == []
    assert 'href="/static/metrics/dashboard.css"' in html
