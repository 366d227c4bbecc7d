// A Telegram channel in JavaScript: the channel guide's example
// (docs/CHANNELS.md). The same channel exists in Python
// (examples/channels/python); the full one, in Rust, is plugins/telegram.
//
// It implements the 0.2.0 `channel` world for Telegram's Bot API with long
// polling: `receive` asks getUpdates to wait up to the host's `max-wait-ms`,
// `send` posts sendMessage. Typing, reactions, edits and webhooks are left
// out: this one shows the shape of a channel in JavaScript.
//
// The exports are async and call `fetch`: componentize-js runs the event
// loop inside the (synchronous) component call until the returned promise
// settles, and StarlingMonkey's `fetch` goes out over wasi:http, to the hosts
// the operator granted. The host keeps one instance per configured channel
// and calls it one entry at a time, so module state lasts as long as the
// channel.

import * as logImport from 'talon:plugin/log@0.2.0';
import { ChannelError, hostServices } from 'talon-sdk';

const { log } = hostServices({ log: logImport });

const CONFIG_SCHEMA = {
  type: 'object',
  required: ['token'],
  additionalProperties: false,
  properties: {
    token: {
      type: 'string',
      pattern: '^[0-9]{1,20}:[A-Za-z0-9_-]{20,100}$',
      description: "The bot's token from @BotFather, a secret",
    },
    api_base: { type: 'string', default: 'https://api.telegram.org', description: 'Base URL of the Bot API' },
    poll_timeout_s: {
      type: 'integer',
      minimum: 0,
      maximum: 50,
      default: 25,
      description: 'Longest wait of one getUpdates (the host asks for less)',
    },
  },
};
const TOKEN = /^[0-9]{1,20}:[A-Za-z0-9_-]{20,100}$/;
// Telegram's limit is 4096 characters; in bytes it is never more, so the
// host's split by bytes always fits.
const MAX_MESSAGE_BYTES = 4096;

/** The connection: set by `connect`, dropped by `disconnect`. */
let bot = null;

/** Calls a Bot API method and returns its `result`, or throws a ChannelError. */
async function call(base, token, method, params) {
  let answer;
  try {
    answer = await fetch(`${base}/bot${token}/${method}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(params),
    });
  } catch (error) {
    // StarlingMonkey's fetch reports every network failure as one
    // "NetworkError", the host's refusal of an ungranted destination
    // included; should a text name the refusal, it is reported as such.
    const text = String(error?.message ?? error);
    if (/denied|prohibited/i.test(text)) {
      throw ChannelError.permissionDenied(`${text}; grant the Bot API's host:port`);
    }
    throw ChannelError.remote(`${method}: ${text}`);
  }
  let envelope;
  try {
    envelope = await answer.json();
  } catch {
    throw ChannelError.remote(`not a Bot API answer (HTTP ${answer.status})`);
  }
  if (envelope.ok) return envelope.result;
  const description = envelope.description ?? 'no description';
  const retryAfter = envelope.parameters?.retry_after;
  if (answer.status === 429 && retryAfter) throw ChannelError.rateLimited(retryAfter * 1000);
  if (answer.status === 401 || answer.status === 404) {
    throw ChannelError.invalid(`Telegram refused the token (${answer.status}): ${description}`);
  }
  throw ChannelError.remote(`Telegram refused (${answer.status}): ${description}`);
}

function connected() {
  if (!bot) throw ChannelError.notConnected('connect first');
  return bot;
}

function telegramId(value, what) {
  if (!/^-?[0-9]+$/.test(value ?? '')) throw ChannelError.invalid(`${what} is not a Telegram id: ${value}`);
  return Number(value);
}

/** A Telegram message as the host's channel event (null without text). */
function event(message, username) {
  const { text, chat, from: sender = {} } = message;
  if (typeof text !== 'string' || chat?.id === undefined) return null;
  const direct = chat.type === 'private';
  const reply = message.reply_to_message;
  const mentioned =
    direct || text.toLowerCase().includes(`@${username}`.toLowerCase()) || reply?.from?.username === username;
  return {
    tag: 'message',
    val: {
      id: `${chat.id}:${message.message_id}`,
      chatId: String(chat.id),
      chatKind: direct ? 'direct' : 'group',
      threadId: message.message_thread_id === undefined ? undefined : String(message.message_thread_id),
      replyTo: reply ? `${chat.id}:${reply.message_id}` : undefined,
      sender: { id: String(sender.id ?? ''), displayName: sender.first_name, isBot: Boolean(sender.is_bot) },
      text,
      attachments: [],
      mentioned,
      // u64 in WIT is a BigInt in componentize-js.
      timestampMs: message.date === undefined ? undefined : BigInt(message.date) * 1000n,
    },
  };
}

const unsupported = (what) => () => {
  throw ChannelError.unsupported(what);
};

// componentize-js exports the object named after the WIT interface.
export const channelAdapter = {
  describe() {
    return {
      name: 'telegram_js',
      displayName: 'Telegram (JavaScript example)',
      configSchema: JSON.stringify(CONFIG_SCHEMA),
      secretKeys: ['token'],
      capabilities: { threads: true },
      maxMessageBytes: MAX_MESSAGE_BYTES,
    };
  },

  async connect(configJson) {
    const config = JSON.parse(configJson);
    if (!TOKEN.test(config.token ?? '')) {
      throw ChannelError.invalid('token: not a bot token (digits, a colon, then the secret)');
    }
    const base = (config.api_base ?? 'https://api.telegram.org').replace(/\/+$/, '');
    const me = await call(base, config.token, 'getMe', {});
    bot = {
      base,
      token: config.token,
      pollTimeoutS: config.poll_timeout_s ?? 25,
      username: me.username ?? '',
      // A reconnect keeps the offset: what was confirmed stays confirmed.
      offset: bot?.offset ?? 0,
      lost: null,
    };
    log.info(`connected as @${bot.username}`);
  },

  async receive(maxWaitMs) {
    const b = connected();
    // Telegram waits in whole seconds; the host's wait bounds the call.
    const timeout = Math.min(b.pollTimeoutS, Math.floor(maxWaitMs / 1000));
    let updates;
    try {
      updates = await call(b.base, b.token, 'getUpdates', {
        offset: b.offset,
        timeout,
        allowed_updates: ['message'],
      });
    } catch (error) {
      if (error.kind !== 'rate-limited') b.lost = error.message;
      throw error;
    }
    const events = [];
    for (const update of updates) {
      // Every update moves the offset on, even one that is not a message.
      b.offset = Math.max(b.offset, update.update_id + 1);
      const found = update.message && event(update.message, b.username);
      if (found) events.push(found);
    }
    return events;
  },

  async send(message) {
    const b = connected();
    if (message.attachments.length) {
      throw ChannelError.unsupported('attachments are not sent; send their URLs in the text');
    }
    const { to } = message;
    const params = { chat_id: telegramId(to.chatId, 'chat'), text: message.text };
    if (to.threadId) params.message_thread_id = telegramId(to.threadId, 'thread');
    if (to.replyTo) {
      const replyTo = telegramId(to.replyTo.split(':').pop(), 'message');
      params.reply_parameters = { message_id: replyTo, allow_sending_without_reply: true };
    }
    const posted = await call(b.base, b.token, 'sendMessage', params);
    return [`${to.chatId}:${posted.message_id}`];
  },

  typing: unsupported('typing'),
  react: unsupported('reactions'),
  streamStart: unsupported('edits'),
  streamDelta: unsupported('edits'),
  streamEnd: unsupported('edits'),
  handleWebhook: unsupported('this channel long-polls; it has no webhook'),

  health() {
    if (!bot) return { state: 'disconnected', detail: 'not connected' };
    if (bot.lost) return { state: 'disconnected', detail: bot.lost };
    return { state: 'connected', detail: `@${bot.username} (long polling)` };
  },

  disconnect() {
    bot = null;
  },
};
