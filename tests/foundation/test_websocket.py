"""graphql-transport-ws: the token goes in `connection_init`; missing or bad tokens close with 4403."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from starlette.websockets import WebSocketDisconnect
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from db.repositories import users as user_repo
from talkative.app import create_app
from talkative.settings import Settings
from tests.foundation.fixtures import Api, both_backends
from tests.foundation.live import running_server

PROTOCOL = "graphql-transport-ws"
ME = "{ me { __typename ... on User { id email } ... on Error { code } } }"


@both_backends
def test_authenticated_operation_over_websocket(api: Api) -> None:
    account = api.register()
    with api.client.websocket_connect("/graphql", subprotocols=[PROTOCOL]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {account.access_token}"}})
        assert ws.receive_json() == {"type": "connection_ack"}
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": ME}})
        message = ws.receive_json()
        assert message["type"] == "next" and message["id"] == "1"
        assert message["payload"]["data"]["me"] == {"__typename": "User", "id": account.id, "email": account.email}
        assert ws.receive_json() == {"type": "complete", "id": "1"}


@pytest.mark.parametrize("payload", [
    {}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic abc"}, {"token": ""}, {"token": 42},
])
def test_missing_or_bad_token_closes_with_4403(api: Api, payload: dict[str, Any]) -> None:
    with api.client.websocket_connect("/graphql", subprotocols=[PROTOCOL]) as ws:
        ws.send_json({"type": "connection_init", "payload": payload})
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 4403


def test_plain_token_in_payload_is_accepted(api: Api) -> None:
    account = api.register()
    with api.client.websocket_connect("/graphql", subprotocols=[PROTOCOL]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"token": account.access_token}})
        assert ws.receive_json()["type"] == "connection_ack"


def test_unexpected_errors_are_masked_over_websockets(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    account = api.register()

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(user_repo, "get_many", broken)
    with api.client.websocket_connect("/graphql", subprotocols=[PROTOCOL]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {account.access_token}"}})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": ME}})
        message = ws.receive_json()
    [error] = message["payload"]["errors"]
    assert error["extensions"]["code"] == "INTERNAL" and "secret" not in json.dumps(message)
    assert error["message"] == f"Internal error (request id {error['extensions']['requestId']})"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_real_socket_4403_and_success(settings: Settings) -> None:
    """Over a real TCP socket through uvicorn, not the in-process test transport."""
    app = create_app(settings)
    with running_server(app) as address:
        url = f"ws://{address}/graphql"

        async def scenario() -> tuple[int, Any]:
            async with connect(url, subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
                await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer forged"}}))
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 10)
                assert closed.value.rcvd is not None
                code = closed.value.rcvd.code
            # A registered user over the same real socket path.
            async with httpx.AsyncClient(base_url=f"http://{address}") as http:
                reply = await http.post("/graphql", json={"query": (
                    'mutation { register(email: "ws@example.com", password: "long enough pw", displayName: "W") '
                    "{ ... on AuthPayload { accessToken } } }")})
                token = reply.json()["data"]["register"]["accessToken"]
            async with connect(url, subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
                await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
                assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"type": "connection_ack"}
                await ws.send(json.dumps({"id": "a", "type": "subscribe", "payload": {"query": ME}}))
                result = json.loads(await asyncio.wait_for(ws.recv(), 10))
            return code, result

        code, result = asyncio.run(scenario())
    assert code == 4403
    assert result["payload"]["data"]["me"]["email"] == "ws@example.com"
