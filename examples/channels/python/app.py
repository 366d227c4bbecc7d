"""A Telegram channel in Python: the channel guide's example (docs/CHANNELS.md).

It implements the 0.2.0 `channel` world for Telegram's Bot API with long
polling: `receive` keeps one `getUpdates` pending and waits on it for at
most the host's `max_wait_ms`, `send` posts `sendMessage`. Typing,
reactions, edits and webhooks are left to the Rust channel (plugins/telegram):
this one shows the shape of a channel in Python, small enough to read.

componentize-py looks for a class named after the exported interface
(`ChannelAdapter`). The host keeps one instance of the component per
configured channel and calls it one entry at a time, so module-level state
lives as long as the channel.
"""

import json
import re

from componentize_py_types import Err
from talon_sdk import http, log
from wit_world import exports
from wit_world.imports.channel_types import (
    Capabilities,
    ChannelError_Invalid,
    ChannelError_NotConnected,
    ChannelError_PermissionDenied,
    ChannelError_RateLimited,
    ChannelError_Remote,
    ChannelError_Unsupported,
    ChannelEvent_Message,
    ChannelHealth,
    ChannelInfo,
    ChatKind,
    ConnectionState,
    InboundMessage,
    Sender,
)

CONFIG_SCHEMA = {
    "type": "object",
    "required": ["token"],
    "additionalProperties": False,
    "properties": {
        "token": {
            "type": "string",
            "pattern": "^[0-9]{1,20}:[A-Za-z0-9_-]{20,100}$",
            "description": "The bot's token from @BotFather, a secret",
        },
        "api_base": {
            "type": "string",
            "default": "https://api.telegram.org",
            "description": "Base URL of the Bot API",
        },
        "poll_timeout_s": {
            "type": "integer",
            "minimum": 0,
            "maximum": 50,
            "default": 25,
            "description": "Long-poll timeout of getUpdates",
        },
    },
}
TOKEN = re.compile(r"^[0-9]{1,20}:[A-Za-z0-9_-]{20,100}$")
# Telegram's limit is 4096 characters; in bytes it is never more, so the
# host's split by bytes always fits.
MAX_MESSAGE_BYTES = 4096

# The connection: set by `connect`, dropped by `disconnect`.
_bot = None


class Bot:
    """A connected bot: where its API is, who it is, what it confirmed."""

    def __init__(self, base: str, token: str, poll_timeout_s: int) -> None:
        self.base = base.rstrip("/")
        self.token = token
        self.poll_timeout_s = poll_timeout_s
        self.username = ""
        self.offset = 0
        self.poll = None  # the pending getUpdates, if any
        self.lost = None  # why the connection is gone, if it is

    def _url(self, method: str) -> str:
        return f"{self.base}/bot{self.token}/{method}"

    def _body(self, params: dict) -> dict:
        return {"headers": [("content-type", "application/json")], "body": json.dumps(params).encode()}

    def call(self, method: str, params: dict):
        """Calls a Bot API method and returns its `result`."""
        try:
            answer = http.request("POST", self._url(method), **self._body(params))
        except http.HttpError as e:
            raise _http_error(e) from None
        return _decode(answer)

    def start_poll(self) -> None:
        params = {"offset": self.offset, "timeout": self.poll_timeout_s, "allowed_updates": ["message"]}
        try:
            self.poll = http.start("POST", self._url("getUpdates"), **self._body(params))
        except http.HttpError as e:
            raise _http_error(e) from None


def _http_error(e: "http.HttpError") -> Err:
    if e.denied:
        return Err(ChannelError_PermissionDenied(f"{e}; grant the Bot API's host:port"))
    return Err(ChannelError_Remote(str(e)))


def _decode(answer: "http.Response"):
    """Telegram's envelope: `{ok, result}` or `{ok: false, error_code, description}`."""
    try:
        envelope = answer.json()
    except ValueError:
        raise Err(ChannelError_Remote(f"not a Bot API answer (HTTP {answer.status})")) from None
    if envelope.get("ok"):
        return envelope.get("result")
    description = envelope.get("description", "no description")
    retry_after = (envelope.get("parameters") or {}).get("retry_after")
    if answer.status == 429 and retry_after:
        raise Err(ChannelError_RateLimited(int(retry_after) * 1000))
    if answer.status in (401, 404):
        raise Err(ChannelError_Invalid(f"Telegram refused the token ({answer.status}): {description}"))
    raise Err(ChannelError_Remote(f"Telegram refused ({answer.status}): {description}"))


def _event(message: dict, username: str):
    """A Telegram message as the host's inbound message (None if it has no text)."""
    text = message.get("text")
    sender = message.get("from") or {}
    chat = message.get("chat") or {}
    if text is None or "id" not in chat:
        return None
    direct = chat.get("type") == "private"
    reply = message.get("reply_to_message") or {}
    thread = message.get("message_thread_id")
    mentioned = direct or f"@{username}".lower() in text.lower() or (
        (reply.get("from") or {}).get("username") == username
    )
    return ChannelEvent_Message(
        InboundMessage(
            id=f"{chat['id']}:{message['message_id']}",
            chat_id=str(chat["id"]),
            chat_kind=ChatKind.DIRECT if direct else ChatKind.GROUP,
            thread_id=None if thread is None else str(thread),
            reply_to=f"{chat['id']}:{reply['message_id']}" if "message_id" in reply else None,
            sender=Sender(
                id=str(sender.get("id", "")),
                display_name=sender.get("first_name"),
                is_bot=bool(sender.get("is_bot")),
            ),
            text=text,
            attachments=[],
            mentioned=mentioned,
            timestamp_ms=message["date"] * 1000 if "date" in message else None,
        )
    )


def _connected() -> Bot:
    if _bot is None:
        raise Err(ChannelError_NotConnected("connect first"))
    return _bot


def _int(value, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Err(ChannelError_Invalid(f"{what} is not a Telegram id: {value!r}")) from None


class ChannelAdapter(exports.ChannelAdapter):
    def describe(self) -> ChannelInfo:
        return ChannelInfo(
            name="telegram_python",
            display_name="Telegram (Python example)",
            config_schema=json.dumps(CONFIG_SCHEMA),
            secret_keys=["token"],
            capabilities=Capabilities.THREADS,
            max_message_bytes=MAX_MESSAGE_BYTES,
        )

    def connect(self, config: str) -> None:
        global _bot
        settings = json.loads(config)
        token = settings.get("token", "")
        if not TOKEN.match(token):
            raise Err(ChannelError_Invalid("token: not a bot token (digits, a colon, then the secret)"))
        bot = Bot(
            settings.get("api_base", "https://api.telegram.org"),
            token,
            int(settings.get("poll_timeout_s", 25)),
        )
        # A reconnect keeps the offset: what was confirmed stays confirmed.
        if _bot is not None:
            bot.offset = _bot.offset
        me = bot.call("getMe", {})
        bot.username = me.get("username", "")
        _bot = bot
        log.info(f"connected as @{bot.username}")

    def receive(self, max_wait_ms: int):
        bot = _connected()
        if bot.poll is None:
            bot.start_poll()
        try:
            answer = bot.poll.wait(max_wait_ms)
        except http.HttpError as e:
            bot.poll, bot.lost = None, str(e)
            raise _http_error(e) from None
        if answer is None:
            return []  # the long poll is still open; the next receive waits on it
        bot.poll = None
        try:
            updates = _decode(answer)
        except Err as e:
            if not isinstance(e.value, ChannelError_RateLimited):
                bot.lost = str(e.value.value)
            raise
        events = []
        for update in updates:
            # Every update moves the offset on, even one that is not a message.
            bot.offset = max(bot.offset, update["update_id"] + 1)
            event = _event(update.get("message") or {}, bot.username)
            if event is not None:
                events.append(event)
        return events

    def send(self, message) -> list:
        bot = _connected()
        if message.attachments:
            raise Err(ChannelError_Unsupported("attachments are not sent; send their URLs in the text"))
        params = {"chat_id": _int(message.to.chat_id, "chat"), "text": message.text}
        if message.to.thread_id:
            params["message_thread_id"] = _int(message.to.thread_id, "thread")
        if message.to.reply_to:
            reply = _int(message.to.reply_to.rpartition(":")[2], "message")
            params["reply_parameters"] = {"message_id": reply, "allow_sending_without_reply": True}
        posted = bot.call("sendMessage", params)
        return [f"{message.to.chat_id}:{posted['message_id']}"]

    def typing(self, to) -> None:
        raise Err(ChannelError_Unsupported("typing"))

    def react(self, chat_id: str, message_id: str, reaction: str) -> None:
        raise Err(ChannelError_Unsupported("reactions"))

    def stream_start(self, to) -> str:
        raise Err(ChannelError_Unsupported("edits"))

    def stream_delta(self, stream_id: str, text: str) -> None:
        raise Err(ChannelError_Unsupported("edits"))

    def stream_end(self, stream_id: str) -> str:
        raise Err(ChannelError_Unsupported("edits"))

    def handle_webhook(self, request):
        raise Err(ChannelError_Unsupported("this channel long-polls; it has no webhook"))

    def health(self) -> ChannelHealth:
        if _bot is None:
            return ChannelHealth(state=ConnectionState.DISCONNECTED, detail="not connected")
        if _bot.lost is not None:
            return ChannelHealth(state=ConnectionState.DISCONNECTED, detail=_bot.lost)
        return ChannelHealth(state=ConnectionState.CONNECTED, detail=f"@{_bot.username} (long polling)")

    def disconnect(self) -> None:
        global _bot
        _bot = None
