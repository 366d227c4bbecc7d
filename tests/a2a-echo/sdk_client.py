"""The official `a2a-sdk` (1.x) client against a Talon daemon, for
tests/e2e/a2a.rs: resolves Talon's agent card, keeps only the JSON-RPC
interface of the protocol version asked for, sends one message (blocking or
streaming), reads the task back with GetTask, and prints one JSON line:
{"state", "text", "task_id", "events", "get_state"}.

Usage: python sdk_client.py BASE_URL API_KEY VERSION(1.0|0.3) MODE(send|stream) TEXT [AGENT]
"""

import asyncio
import json
import sys
import uuid

import httpx
from google.protobuf.json_format import MessageToDict

from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.types.a2a_pb2 import (
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    TaskState,
)


async def main() -> None:
    base, key, version, mode, text = sys.argv[1:6]
    agent = sys.argv[6] if len(sys.argv) > 6 else None
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(headers=headers, timeout=60) as http:
        card = await A2ACardResolver(http, base).get_agent_card()
        wanted = [i for i in card.supported_interfaces if i.protocol_version.startswith(version)]
        assert wanted, f"the card offers no {version} interface: {card}"
        del card.supported_interfaces[:]
        card.supported_interfaces.extend(wanted)
        client = ClientFactory(ClientConfig(httpx_client=http, streaming=mode == "stream")).create(card)
        message = Message(
            role=Role.ROLE_USER,
            message_id=str(uuid.uuid4()),
            parts=[Part(text=text)],
        )
        if agent:
            message.metadata.update({"agent": agent})
        state, answer, task_id, events = None, None, None, []
        async for response in client.send_message(SendMessageRequest(message=message)):
            event = MessageToDict(response)
            events.append(sorted(event.keys())[0])
            if response.HasField("task"):
                task_id = response.task.id
                state = response.task.status.state
                for artifact in response.task.artifacts:
                    answer = "".join(p.text for p in artifact.parts)
            elif response.HasField("status_update"):
                task_id = response.status_update.task_id
                state = response.status_update.status.state
            elif response.HasField("artifact_update"):
                answer = "".join(p.text for p in response.artifact_update.artifact.parts)
        task = await client.get_task(GetTaskRequest(id=task_id))
        print(json.dumps({
            "state": TaskState.Name(state),
            "text": answer,
            "task_id": task_id,
            "events": events,
            "get_state": TaskState.Name(task.status.state),
            "get_text": "".join(p.text for a in task.artifacts for p in a.parts),
        }))
        await client.close()


asyncio.run(main())
