// Talon plugin helpers for JavaScript components (componentize-js).
//
// A tool is an object with a name, a description, the JSON Schema of its
// arguments and a `run(args)` function. `definePlugin` turns a list of tools
// into the `tools` export of the `talon:plugin/tool` world: it describes
// them, checks the arguments a model sends against the schema before calling
// `run`, returns the result as JSON, and turns failures into the WIT
// `tool-error` variant.
//
// This file has no dependencies. The host imports (`talon:plugin/log` ...)
// are loaded by `hostServices()` in the component, where they exist; the
// rest is plain JavaScript that also runs and is tested under Node.

/** The WIT package version this helper implements (`wit = "..."` in the manifest). */
export const WIT_VERSION = '0.1.0';

const KINDS = ['invalid-arguments', 'not-found', 'permission-denied', 'failed'];
const TOOL_NAME = /^[a-z0-9_-]+$/;

/**
 * A failure reported to the agent as the WIT `tool-error` variant.
 *
 * componentize-js turns an exception with a `payload` property into the
 * `err` case of a result; the payload is the variant `{ tag, val }`.
 */
export class ToolError extends Error {
  /**
   * @param {'invalid-arguments'|'not-found'|'permission-denied'|'failed'} kind
   * @param {string} message
   */
  constructor(kind, message) {
    if (!KINDS.includes(kind)) {
      throw new TypeError(`unknown tool error kind ${JSON.stringify(kind)}`);
    }
    super(message);
    this.name = 'ToolError';
    this.kind = kind;
    this.payload = { tag: kind, val: String(message) };
  }

  /** The arguments do not fit; the message says how. */
  static invalidArguments(message) {
    return new ToolError('invalid-arguments', message);
  }

  /** Something the tool looked for does not exist. */
  static notFound(message) {
    return new ToolError('not-found', message);
  }

  /** The host refused something the tool needed. */
  static permissionDenied(message) {
    return new ToolError('permission-denied', message);
  }

  /** Anything else went wrong. */
  static failed(message) {
    return new ToolError('failed', message);
  }

  /** Maps any thrown value to a ToolError. */
  static from(error) {
    if (error instanceof ToolError) return error;
    if (error instanceof Error) return ToolError.failed(`${error.name}: ${error.message}`);
    return ToolError.failed(String(error));
  }
}

function typeName(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function fits(value, kind) {
  const actual = typeName(value);
  if (kind === 'number') return actual === 'number' || actual === 'integer';
  return actual === kind;
}

/**
 * Checks `value` against a JSON Schema: `type` (a name or a list),
 * `enum`, `const`, `properties`, `required`, `additionalProperties`, `items`,
 * `minimum`, `maximum`, `minLength`, `maxLength`, `minItems`, `maxItems`.
 * Other keywords are accepted and not checked.
 *
 * @returns {string|null} the first problem, naming where it is, or null.
 */
export function checkSchema(value, schema, where = 'arguments') {
  if (schema === true || schema === undefined) return null;
  if (schema === false) return `${where}: not allowed`;
  if (schema.type !== undefined) {
    const kinds = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (!kinds.some((k) => fits(value, k))) {
      return `${where}: expected ${kinds.join(' or ')}, got ${typeName(value)}`;
    }
  }
  if (schema.enum && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) {
    return `${where}: ${JSON.stringify(value)} is not one of ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}`;
  }
  if ('const' in schema && JSON.stringify(schema.const) !== JSON.stringify(value)) {
    return `${where}: must be ${JSON.stringify(schema.const)}`;
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) return `${where}: must be at least ${schema.minimum}`;
    if (schema.maximum !== undefined && value > schema.maximum) return `${where}: must be at most ${schema.maximum}`;
  }
  if (typeof value === 'string') {
    const length = [...value].length;
    if (schema.minLength !== undefined && length < schema.minLength) return `${where}: must have at least ${schema.minLength} characters`;
    if (schema.maxLength !== undefined && length > schema.maxLength) return `${where}: must have at most ${schema.maxLength} characters`;
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) return `${where}: must have at least ${schema.minItems} items`;
    if (schema.maxItems !== undefined && value.length > schema.maxItems) return `${where}: must have at most ${schema.maxItems} items`;
    if (schema.items !== undefined) {
      for (let i = 0; i < value.length; i++) {
        const problem = checkSchema(value[i], schema.items, `${where}[${i}]`);
        if (problem) return problem;
      }
    }
  }
  if (typeName(value) === 'object') {
    const properties = schema.properties ?? {};
    for (const name of schema.required ?? []) {
      if (!(name in value)) return `${where}: missing field \`${name}\``;
    }
    for (const [name, item] of Object.entries(value)) {
      if (name in properties) {
        const problem = checkSchema(item, properties[name], `${where}.${name}`);
        if (problem) return problem;
      } else if (schema.additionalProperties === false) {
        const known = Object.keys(properties).map((p) => `\`${p}\``).join(', ') || 'none';
        return `${where}: unknown field \`${name}\`, expected one of ${known}`;
      } else if (typeof schema.additionalProperties === 'object') {
        const problem = checkSchema(item, schema.additionalProperties, `${where}.${name}`);
        if (problem) return problem;
      }
    }
  }
  return null;
}

/**
 * Builds the `tools` export from a list of tools.
 *
 * @param {Array<{name: string, description: string, parameters: object,
 *   run: (args: any) => any}>} tools  `parameters` is the JSON Schema of the
 *   arguments object; `run` receives the parsed arguments and returns any
 *   JSON-serializable value (or a promise of one). Throw a ToolError to fail
 *   with a specific kind; any other exception becomes `failed`.
 * @returns {{describe: () => Array, invoke: (name: string, args: string) => string}}
 */
export function definePlugin(tools) {
  const byName = new Map();
  for (const tool of tools) {
    if (!TOOL_NAME.test(tool.name ?? '')) {
      throw new TypeError(`tool name ${JSON.stringify(tool.name)}: use lowercase letters, digits, '_' and '-'`);
    }
    if (byName.has(tool.name)) throw new TypeError(`tool ${tool.name} is defined twice`);
    if (!tool.description) throw new TypeError(`tool ${tool.name} needs a description`);
    if (typeof tool.run !== 'function') throw new TypeError(`tool ${tool.name} needs a run(args) function`);
    byName.set(tool.name, { ...tool, parameters: tool.parameters ?? { type: 'object', properties: {} } });
  }

  return {
    describe() {
      return [...byName.values()].map((t) => ({
        name: t.name,
        description: t.description,
        parametersSchema: JSON.stringify(t.parameters),
      }));
    },

    invoke(name, argumentsJson) {
      const tool = byName.get(name);
      if (!tool) {
        throw ToolError.notFound(`no tool \`${name}\` in this plugin (it has: ${[...byName.keys()].join(', ')})`);
      }
      let args;
      try {
        args = argumentsJson.trim() === '' ? {} : JSON.parse(argumentsJson);
      } catch (error) {
        throw ToolError.invalidArguments(`arguments are not JSON: ${error.message}`);
      }
      const problem = checkSchema(args, tool.parameters);
      if (problem) throw ToolError.invalidArguments(problem);
      let result;
      try {
        result = tool.run(args);
      } catch (error) {
        throw ToolError.from(error);
      }
      if (result && typeof result.then === 'function') {
        // componentize-js runs the event loop until an async export settles.
        return result.then((value) => JSON.stringify(value ?? null), (error) => {
          throw ToolError.from(error);
        });
      }
      return JSON.stringify(result ?? null);
    },
  };
}

const CHANNEL_ERRORS = ['not-connected', 'invalid', 'unsupported', 'permission-denied', 'remote', 'rate-limited'];

/**
 * A failure of a channel entry (`connect`, `receive`, `send` ...), reported
 * to the host as the 0.2.0 WIT `channel-error` variant. Like ToolError, it
 * carries the variant as `payload`, which componentize-js returns as the
 * `err` case. Throw it from a `channel-adapter` export:
 *
 *   throw ChannelError.remote(`Telegram refused (${status}): ${description}`);
 *   throw ChannelError.rateLimited(retryAfterSeconds * 1000);
 */
export class ChannelError extends Error {
  /**
   * @param {'not-connected'|'invalid'|'unsupported'|'permission-denied'|'remote'|'rate-limited'} kind
   * @param {string|number} value the text, or for `rate-limited` the milliseconds to wait
   */
  constructor(kind, value) {
    if (!CHANNEL_ERRORS.includes(kind)) {
      throw new TypeError(`unknown channel error kind ${JSON.stringify(kind)}`);
    }
    // rate-limited carries a u32 of milliseconds; the other cases a string.
    const val = kind === 'rate-limited' ? Math.max(0, Math.min(0xffffffff, Math.round(Number(value) || 0))) : String(value);
    super(kind === 'rate-limited' ? `rate limited: retry after ${val} ms` : val);
    this.name = 'ChannelError';
    this.kind = kind;
    this.payload = { tag: kind, val };
  }

  /** `send` and the like before `connect` succeeded. */
  static notConnected(message) {
    return new ChannelError('not-connected', message);
  }

  /** The configuration or an argument is wrong. */
  static invalid(message) {
    return new ChannelError('invalid', message);
  }

  /** The channel lacks the capability asked for. */
  static unsupported(message) {
    return new ChannelError('unsupported', message);
  }

  /** The host refused something (a host, a socket): not granted. */
  static permissionDenied(message) {
    return new ChannelError('permission-denied', message);
  }

  /** The platform refused or failed; the host retries later. */
  static remote(message) {
    return new ChannelError('remote', message);
  }

  /** The platform asks to slow down: retry after `ms` milliseconds. */
  static rateLimited(ms) {
    return new ChannelError('rate-limited', ms);
  }

  /** `error` as a ChannelError: itself if it is one, else `remote`. */
  static from(error) {
    if (error instanceof ChannelError) return error;
    return ChannelError.remote(error?.message ?? String(error));
  }
}

/**
 * Wraps the host imports in friendlier functions. Call it from the component
 * with the imported modules, so this file needs no `talon:` imports itself:
 *
 *   import * as logImport from 'talon:plugin/log@0.1.0';
 *   const { log } = hostServices({ log: logImport });
 *
 * @param {{log?: object, memory?: object, settings?: object}} imports
 */
export function hostServices({ log, memory, settings } = {}) {
  const services = {};
  if (log) {
    const at = (level) => (message) => log.log(level, String(message));
    services.log = {
      trace: at('trace'),
      debug: at('debug'),
      info: at('info'),
      warn: at('warn'),
      error: at('error'),
    };
  }
  if (memory) {
    // Host refusals reach the agent as tool errors.
    const call = (fn) => (...args) => {
      try {
        return fn(...args);
      } catch (error) {
        const variant = error?.payload ?? error;
        const message = `memory: ${variant?.val ?? error?.message ?? String(error)}`;
        if (variant?.tag === 'denied') throw ToolError.permissionDenied(message);
        throw ToolError.failed(message);
      }
    };
    services.memory = {
      get: call((key) => memory.get(key)),
      set: call((key, value) => memory.set(key, value)),
      delete: call((key) => memory.delete(key)),
      listKeys: call((prefix = '') => memory.listKeys(prefix)),
      getJson: call((key) => {
        const text = memory.get(key);
        return text === undefined || text === null ? null : JSON.parse(text);
      }),
      setJson: call((key, value) => memory.set(key, JSON.stringify(value))),
    };
  }
  if (settings) {
    services.settings = {
      get: (key, fallback = undefined) => settings.get(key) ?? fallback,
      require: (key) => {
        const value = settings.get(key);
        if (value === undefined || value === null) {
          throw ToolError.failed(`setting \`${key}\` is not set; the operator must configure it for this plugin`);
        }
        return value;
      },
    };
  }
  return services;
}
