"""`python -m hitl_client.mcp`: spawned over stdio by the `mcp` package's own client,
against a live server, with a reviewer deciding through the API in between.

The server process has only HITL_URL and HITL_API_KEY (and the SDK's default
environment). Its requests to the live server and the reviewer's never overlap here:
with SQLite the live server's threads share one connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

pytest.importorskip("mcp")

from mcp import ClientSession  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402

from reviews.models import ReviewItem  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

REFUND = {"order": "1182", "amount": 420.0, "currency": "EUR"}


class Host:
    """An MCP host's side of the connection: call a tool, read its structured answer."""

    def __init__(self, session: ClientSession) -> None:
        self.session = session

    async def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        result = await self.session.call_tool(tool, arguments)
        assert not result.is_error, result.content
        # The same answer as text, for hosts that read only that.
        assert json.loads(result.content[0].text) == result.structured_content
        return result.structured_content

    async def error(self, tool: str, **arguments: Any) -> str:
        result = await self.session.call_tool(tool, arguments)
        assert result.is_error
        return result.content[0].text


@pytest.fixture
def connect(server, api_key, tmp_path) -> Callable[[], contextlib.AbstractAsyncContextManager[Host]]:
    """Spawn the MCP server as a host would, configured for the live server."""

    @contextlib.asynccontextmanager
    async def connect() -> AsyncIterator[Host]:
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "hitl_client.mcp"],
            env={"HITL_URL": server.url, "HITL_API_KEY": api_key},
            cwd=tmp_path,
        )
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield Host(session)

    return connect


def run(coroutine):
    return asyncio.run(coroutine)


def test_the_server_offers_the_two_tools(connect):
    async def main():
        async with connect() as host:
            return await host.session.list_tools()

    tools = {tool.name: tool for tool in run(main()).tools}
    assert set(tools) == {"request_approval", "get_approval_status"}
    assert tools["request_approval"].input_schema["required"] == ["action_type", "params"]
    assert tools["get_approval_status"].annotations.read_only_hint is True


def test_a_held_action_is_answered_at_once_and_its_approval_read_later(
    connect, server, refunds_reviewed, desk
):
    async def main():
        async with connect() as host:
            asked = await host.call(
                "request_approval", action_type="payment.refund", params=REFUND, reasoning="Parcel lost."
            )
            before = await host.call("get_approval_status", id=asked["id"])
            await asyncio.to_thread(desk.decide_next, "approve", "Order checked, amount right.")
            after = await host.call("get_approval_status", id=asked["id"])
            return asked, before, after

    asked, before, after = run(main())
    item = ReviewItem.objects.get()
    assert asked["id"] == str(item.pk) and asked["status"] == "pending" and asked["final"] is False
    assert asked["review_url"] == f"{server.url}/admin/reviews/reviewitem/{item.pk}/review/"
    assert asked["queue"] == "general"
    assert item.action == {"type": "payment.refund", "params": REFUND}
    assert item.context == {"reasoning": "Parcel lost."}
    assert before["status"] == "pending" and "final_action" not in before
    assert after == {
        **after,
        "status": "approved",
        "final": True,
        "approved": True,
        "final_action": {"type": "payment.refund", "params": REFUND},
        "edited": False,
        "decision": "approve",
        "reviewer": "reviewer",
        "justification": "Order checked, amount right.",
        "reason_codes": [],
    }


def test_an_edit_comes_back_as_the_final_action_to_run(connect, refunds_reviewed, desk, codes):
    def lower_amount(action):
        return {**action, "params": {**action["params"], "amount": 300.0}}

    async def main():
        async with connect() as host:
            asked = await host.call("request_approval", action_type="payment.refund", params=REFUND)
            await asyncio.to_thread(
                desk.decide_next,
                "edit",
                "Only 300 was charged.",
                reason_codes=["wrong_amount"],
                edit=lower_amount,
            )
            return await host.call("get_approval_status", id=asked["id"])

    status = run(main())
    assert status["status"] == "edited" and status["approved"] is True and status["edited"] is True
    assert status["final_action"] == {"type": "payment.refund", "params": {**REFUND, "amount": 300.0}}
    assert status["justification"] == "Only 300 was charged." and status["reason_codes"] == ["wrong_amount"]


def test_a_rejection_comes_back_with_the_justification_and_reason_codes(
    connect, refunds_reviewed, desk, codes
):
    async def main():
        async with connect() as host:
            asked = await host.call("request_approval", action_type="payment.refund", params=REFUND)
            await asyncio.to_thread(
                desk.decide_next, "reject", "Never paid.", reason_codes=["policy_violation"]
            )
            return await host.call("get_approval_status", id=asked["id"], wait_seconds=5)

    status = run(main())
    assert status["status"] == "rejected" and status["approved"] is False and status["final"] is True
    assert status["final_action"] is None
    assert status["justification"] == "Never paid." and status["reason_codes"] == ["policy_violation"]
    assert status["decision"] == "reject" and "do not run it" in status["message"]


def test_actions_the_gate_decides_at_once_come_back_final(connect, big_refunds_blocked):
    async def main():
        async with connect() as host:
            small = await host.call("request_approval", action_type="payment.refund", params=REFUND)
            big = await host.call(
                "request_approval", action_type="payment.refund", params={**REFUND, "amount": 25_000.0}
            )
            return small, big

    small, big = run(main())
    assert small["status"] == "auto_approved" and small["approved"] is True
    assert small["final_action"] == {"type": "payment.refund", "params": REFUND}
    assert big["status"] == "blocked" and big["approved"] is False and big["final_action"] is None
    assert big["blocked_by"] == ["No refunds over 10000"]


def test_waiting_for_a_decision_answers_pending_when_none_comes(connect, refunds_reviewed):
    async def main():
        async with connect() as host:
            asked = await host.call("request_approval", action_type="payment.refund", params=REFUND)
            return await host.call("get_approval_status", id=asked["id"], wait_seconds=0.3)

    status = run(main())
    assert status["status"] == "pending" and status["final"] is False


def test_a_retried_request_with_its_key_makes_no_second_item(connect, refunds_reviewed):
    async def main():
        async with connect() as host:
            first = await host.call(
                "request_approval",
                action_type="payment.refund",
                params=REFUND,
                idempotency_key="conv-381/turn-4",
            )
            again = await host.call(
                "request_approval",
                action_type="payment.refund",
                params=REFUND,
                idempotency_key="conv-381/turn-4",
            )
            return first, again

    first, again = run(main())
    assert first["id"] == again["id"] and ReviewItem.objects.count() == 1


def test_errors_reach_the_host_as_tool_errors(connect):
    async def main():
        async with connect() as host:
            unknown = await host.error("get_approval_status", id="00000000-0000-0000-0000-000000000000")
            malformed = await host.error("get_approval_status", id="../../admin")
            return unknown, malformed

    unknown, malformed = run(main())
    assert "not_found" in unknown
    assert "Expected an item id" in malformed


def test_the_server_refuses_to_start_without_its_configuration(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HITL_")}
    command = [sys.executable, "-m", "hitl_client.mcp"]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "HITL_URL" in done.stderr
