// The {{name}} tool, without the component glue: see ../test/tool.test.js.

import { ToolError } from 'talon-sdk';

/**
 * The tool definition for `definePlugin`. `log` is the SDK's logger
 * (`hostServices(...).log`), or any object with an `info` method.
 */
export function greetTool(log) {
  return {
    name: '{{name}}',
    description: "{{description}}",
    parameters: {
      type: 'object',
      properties: {
        name: { type: 'string', description: 'Who or what to greet.' },
        excitement: {
          type: 'integer',
          minimum: 0,
          maximum: 5,
          default: 1,
          description: 'How many exclamation marks to add (0 to 5).',
        },
      },
      required: ['name'],
      additionalProperties: false,
    },
    run({ name, excitement = 1 }) {
      if (!name.trim()) throw ToolError.invalidArguments('name must not be empty');
      log.info(`greeting ${name}`);
      return { message: `Hello, ${name}${'!'.repeat(excitement)}` };
    },
  };
}
