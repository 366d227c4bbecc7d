// The example tool of the Talon plugin guide, in JavaScript: counts the words
// of a text and reports the most frequent ones. The same tool exists in Rust
// (examples/plugins/rust) and Python (examples/plugins/python).
//
// This file is the component's entry point: it imports the host services and
// exports the `tools` interface. The tool itself is in word-count.js.

import * as logImport from 'talon:plugin/log@0.1.0';
import { definePlugin, hostServices } from 'talon-sdk';

import { wordCountTool } from './word-count.js';

const { log } = hostServices({ log: logImport });

// componentize-js exports the object named after the WIT interface.
export const tools = definePlugin([wordCountTool(log)]);
