// Tests of the plain-JavaScript parts of talon-sdk.js: run with `node --test sdk/js/test/`.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ChannelError, checkSchema, definePlugin, hostServices, ToolError } from '../talon-sdk.js';

const greet = {
  name: 'greet',
  description: 'Greets someone.',
  parameters: {
    type: 'object',
    properties: {
      name: { type: 'string', minLength: 1 },
      times: { type: 'integer', minimum: 1, maximum: 5 },
      tone: { enum: ['warm', 'formal'] },
      tags: { type: 'array', items: { type: 'string' } },
    },
    required: ['name'],
    additionalProperties: false,
  },
  run: ({ name, times = 1 }) => Array(times).fill(`Hello, ${name}!`).join(' '),
};

function payloadOf(fn) {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ToolError, `expected a ToolError, got ${error}`);
    return error.payload;
  }
  assert.fail('expected an exception');
}

test('describe lists tools with their schemas as JSON text', () => {
  const plugin = definePlugin([greet]);
  const [described] = plugin.describe();
  assert.equal(described.name, 'greet');
  assert.equal(described.description, 'Greets someone.');
  assert.deepEqual(JSON.parse(described.parametersSchema).required, ['name']);
});

test('invoke parses, checks, runs and returns JSON', () => {
  const plugin = definePlugin([greet]);
  assert.equal(plugin.invoke('greet', '{"name":"Ada","times":2}'), '"Hello, Ada! Hello, Ada!"');
});

test('failures become tool-error variants', () => {
  const boom = { name: 'boom', description: 'Fails.', run: () => { throw new Error('bad'); } };
  const denied = { name: 'denied', description: 'Refuses.', run: () => { throw ToolError.permissionDenied('no'); } };
  const plugin = definePlugin([greet, boom, denied]);
  assert.deepEqual(payloadOf(() => plugin.invoke('nope', '{}')).tag, 'not-found');
  assert.deepEqual(payloadOf(() => plugin.invoke('greet', '{x')).tag, 'invalid-arguments');
  assert.deepEqual(payloadOf(() => plugin.invoke('greet', '{}')), {
    tag: 'invalid-arguments',
    val: 'arguments: missing field `name`',
  });
  assert.deepEqual(payloadOf(() => plugin.invoke('boom', '{}')), { tag: 'failed', val: 'Error: bad' });
  assert.deepEqual(payloadOf(() => plugin.invoke('denied', '')), { tag: 'permission-denied', val: 'no' });
});

test('async tools resolve to JSON', async () => {
  const later = { name: 'later', description: 'Waits.', run: async () => ({ ok: true }) };
  assert.equal(await definePlugin([later]).invoke('later', '{}'), '{"ok":true}');
});

test('checkSchema names the first problem and where it is', () => {
  const schema = greet.parameters;
  assert.equal(checkSchema({ name: 'a', tags: ['x'] }, schema), null);
  assert.equal(checkSchema({ name: 3 }, schema), 'arguments.name: expected string, got integer');
  assert.equal(checkSchema({ name: '' }, schema), 'arguments.name: must have at least 1 characters');
  assert.equal(checkSchema({ name: 'a', times: 9 }, schema), 'arguments.times: must be at most 5');
  assert.equal(checkSchema({ name: 'a', times: 1.5 }, schema), 'arguments.times: expected integer, got number');
  assert.equal(checkSchema({ name: 'a', tone: 'rude' }, schema), 'arguments.tone: "rude" is not one of "warm", "formal"');
  assert.equal(checkSchema({ name: 'a', tags: ['x', 1] }, schema), 'arguments.tags[1]: expected string, got integer');
  assert.match(checkSchema({ name: 'a', extra: 1 }, schema), /unknown field `extra`/);
  assert.equal(checkSchema([], schema), 'arguments: expected object, got array');
});

test('definePlugin refuses malformed tool definitions', () => {
  assert.throws(() => definePlugin([{ ...greet, name: 'Bad Name' }]), /lowercase/);
  assert.throws(() => definePlugin([greet, greet]), /defined twice/);
  assert.throws(() => definePlugin([{ ...greet, description: '' }]), /description/);
});

test('hostServices wraps the imports', () => {
  const lines = [];
  const store = new Map();
  const { log, memory, settings } = hostServices({
    log: { log: (level, message) => lines.push(`${level}:${message}`) },
    memory: {
      get: (k) => store.get(k),
      set: (k, v) => {
        if (k.startsWith('secret')) throw { payload: { tag: 'denied', val: k } };
        store.set(k, v);
      },
      delete: (k) => store.delete(k),
      listKeys: (p) => [...store.keys()].filter((k) => k.startsWith(p)),
    },
    settings: { get: (k) => (k === 'endpoint' ? 'https://x' : undefined) },
  });
  log.info('hi');
  assert.deepEqual(lines, ['info:hi']);
  memory.setJson('a', { n: 1 });
  assert.deepEqual(memory.getJson('a'), { n: 1 });
  assert.deepEqual(memory.listKeys(''), ['a']);
  assert.deepEqual(payloadOf(() => memory.set('secret', 'x')), { tag: 'permission-denied', val: 'memory: secret' });
  assert.equal(settings.get('endpoint'), 'https://x');
  assert.equal(settings.get('missing', 'fallback'), 'fallback');
  assert.equal(payloadOf(() => settings.require('missing')).tag, 'failed');
});

test('ChannelError carries the channel-error variant as its payload', () => {
  assert.deepEqual(ChannelError.remote('Telegram refused (400): chat not found').payload, {
    tag: 'remote',
    val: 'Telegram refused (400): chat not found',
  });
  assert.deepEqual(ChannelError.invalid('token').payload, { tag: 'invalid', val: 'token' });
  assert.deepEqual(ChannelError.notConnected('connect first').payload, { tag: 'not-connected', val: 'connect first' });
  assert.deepEqual(ChannelError.permissionDenied('not granted').payload, { tag: 'permission-denied', val: 'not granted' });
  assert.deepEqual(ChannelError.unsupported('typing').payload, { tag: 'unsupported', val: 'typing' });
  // rate-limited carries a u32 of milliseconds, clamped and rounded.
  const limited = ChannelError.rateLimited(30_000.4);
  assert.deepEqual(limited.payload, { tag: 'rate-limited', val: 30_000 });
  assert.equal(limited.message, 'rate limited: retry after 30000 ms');
  assert.equal(ChannelError.rateLimited(-5).payload.val, 0);
  assert.throws(() => new ChannelError('nope', 'x'), TypeError);
  // Any other exception becomes `remote`; a ChannelError stays itself.
  assert.deepEqual(ChannelError.from(new TypeError('fetch failed')).payload, { tag: 'remote', val: 'fetch failed' });
  assert.equal(ChannelError.from(limited), limited);
});
