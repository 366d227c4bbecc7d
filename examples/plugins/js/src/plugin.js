// The example tool of the Talon plugin guide, in JavaScript: counts the words
// of a text and reports the most frequent ones. The same tool exists in Rust
// (examples/plugins/rust) and Python (examples/plugins/python).

import * as logImport from 'talon:plugin/log@0.1.0';
import { definePlugin, hostServices, ToolError } from 'talon-sdk';

const { log } = hostServices({ log: logImport });

/**
 * Is `c` a letter or digit? The StarlingMonkey engine has no Unicode property
 * escapes (`\p{L}`) in regular expressions, so letters are the characters
 * that have case, plus the caseless scripts from CJK on.
 */
function isAlphanumeric(c) {
  return (c >= '0' && c <= '9') || c.toLowerCase() !== c.toUpperCase() || c.codePointAt(0) >= 0x3400;
}

/** Lowercases a word and trims the punctuation around it ("Hello," -> "hello"). */
function normalize(word) {
  const chars = [...word];
  let start = 0;
  let end = chars.length;
  while (start < end && !isAlphanumeric(chars[start])) start += 1;
  while (end > start && !isAlphanumeric(chars[end - 1])) end -= 1;
  return chars.slice(start, end).join('').toLowerCase();
}

function wordCount({ text, top = 3 }) {
  if (top > 100) throw ToolError.invalidArguments('top must be at most 100');
  const counts = new Map();
  let words = 0;
  for (const raw of text.split(/\s+/)) {
    const word = normalize(raw);
    if (!word) continue;
    words += 1;
    counts.set(word, (counts.get(word) ?? 0) + 1);
  }
  // Most frequent first; ties in alphabetical order so results are stable.
  const ranked = [...counts.entries()]
    .sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0))
    .slice(0, top)
    .map(([word, count]) => ({ word, count }));
  log.debug(`counted ${words} words`);
  return { words, characters: [...text].length, top: ranked };
}

// componentize-js exports the object named after the WIT interface.
export const tools = definePlugin([
  {
    name: 'word_count_js',
    description: 'Counts the words and characters of a text and lists the most frequent words.',
    parameters: {
      type: 'object',
      properties: {
        text: { type: 'string', description: 'The text to count the words of.' },
        top: {
          type: 'integer',
          minimum: 0,
          maximum: 100,
          default: 3,
          description: 'How many of the most frequent words to list (at most 100).',
        },
      },
      required: ['text'],
      additionalProperties: false,
    },
    run: wordCount,
  },
]);
