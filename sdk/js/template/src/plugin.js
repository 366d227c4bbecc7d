// The component's entry point: it imports the host services and exports the
// `tools` interface. The tool itself is in tool.js, so that it also runs (and
// is tested) under Node.

import * as logImport from 'talon:plugin/log@0.1.0';
import { definePlugin, hostServices } from 'talon-sdk';

import { greetTool } from './tool.js';

const { log } = hostServices({ log: logImport });

// componentize-js exports the object named after the WIT interface.
export const tools = definePlugin([greetTool(log)]);
{{skill_export}}
