// The word_count_js tool, without the component glue, so that it also runs
// (and is tested) under Node: see ../test/word-count.test.js.

import { ToolError } from 'talon-sdk';

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

function wordCount({ text, top = 3 }, log) {
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

/**
 * The tool definition for `definePlugin`. `log` is the SDK's logger
 * (`hostServices(...).log`), or any object with a `debug` method.
 */
export function wordCountTool(log) {
  return {
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
    run: (args) => wordCount(args, log),
  };
}
