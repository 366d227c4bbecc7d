// The tool runs under Node as it does in the component: `npm test`.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { definePlugin } from 'talon-sdk';

import { greetTool } from '../src/tool.js';

const tools = definePlugin([greetTool({ info: () => {} })]);

test('greets', () => {
  const out = tools.invoke('{{name}}', '{"name": "world", "excitement": 2}');
  assert.deepEqual(JSON.parse(out), { message: 'Hello, world!!' });
});

test('refuses bad arguments', () => {
  for (const args of ['{"name": " "}', '{"name": "x", "excitement": 9}', '{"nom": "x"}']) {
    assert.throws(() => tools.invoke('{{name}}', args), (e) => e.payload.tag === 'invalid-arguments');
  }
});
