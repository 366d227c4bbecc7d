// The tool runs under Node as it does in the component: `npm test`.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { definePlugin } from 'talon-sdk';

import { wordCountTool } from '../src/word-count.js';

const logged = [];
const tools = definePlugin([wordCountTool({ debug: (m) => logged.push(m) })]);

test('counts and ranks words', () => {
  const out = tools.invoke('word_count_js', '{"text": "The cat and the hat.", "top": 2}');
  assert.deepEqual(JSON.parse(out), {
    words: 5,
    characters: 20,
    top: [{ word: 'the', count: 2 }, { word: 'and', count: 1 }],
  });
  assert.deepEqual(logged, ['counted 5 words']);
});

test('refuses bad arguments before running', () => {
  for (const args of ['{"text": "x", "top": 500}', '{"txt": "x"}', '{"text": 5}']) {
    assert.throws(() => tools.invoke('word_count_js', args), (e) => e.payload.tag === 'invalid-arguments');
  }
});
