// A form made from a JSON Schema of settings: one input per property of an
// object schema. The channel configure form and the hand activate form
// both use it, so a plugin's settings look the same wherever they are set.

/**
 * One input per property of the schema. Secrets are password fields, never
 * filled from the server (it does not return them); empty means "keep".
 * Lists of strings are one item per line. `idPrefix` keeps ids unique when
 * two forms share a page.
 */
function SchemaField({ idPrefix, name, prop, required, secret, isSet, value, onChange }) {
  const id = `${idPrefix}-${name}`;
  const help = prop.description ? `${id}-help` : undefined;
  const label = <label for={id}>{name}{required ? ' (required)' : ''}</label>;
  const note = help && <p id={help} class="muted small">{prop.description}</p>;
  if (prop.type === 'boolean') {
    return (
      <div>
        <label><input id={id} type="checkbox" checked={!!value} aria-describedby={help} onChange={(e) => onChange(e.target.checked)} /> {name}</label>
        {note}
      </div>
    );
  }
  if (Array.isArray(prop.enum)) {
    return (
      <div>
        {label}
        <select id={id} value={value ?? ''} aria-describedby={help} onChange={(e) => onChange(e.target.value)}>
          {!required && <option value="">—</option>}
          {prop.enum.map((v) => <option key={v} value={v}>{v}</option>)}
        </select>
        {note}
      </div>
    );
  }
  if (prop.type === 'array') {
    return (
      <div>
        <label for={id}>{name} (one per line){required ? ' (required)' : ''}</label>
        <textarea id={id} rows={3} value={value ?? ''} aria-describedby={help} onInput={(e) => onChange(e.target.value)} />
        {note}
      </div>
    );
  }
  const numeric = prop.type === 'integer' || prop.type === 'number';
  return (
    <div>
      {label}
      <input id={id} type={secret ? 'password' : numeric ? 'number' : 'text'} autocomplete={secret ? 'new-password' : 'off'}
        value={value ?? ''} min={prop.minimum} max={prop.maximum} step={prop.type === 'integer' ? 1 : undefined}
        placeholder={secret && isSet ? 'set (leave empty to keep)' : prop.default !== undefined ? String(prop.default) : ''}
        aria-describedby={help} onInput={(e) => onChange(e.target.value)} />
      {note}
    </div>
  );
}

/** Required settings first; the schema's key order is not kept by JSON objects. */
const fieldOrder = (props, required) =>
  Object.entries(props).sort(([a], [b]) => Number(required.includes(b)) - Number(required.includes(a)));

/** The properties and required names of an object schema (empty when none). */
export const schemaParts = (schema) => ({ props: schema?.properties || {}, required: schema?.required || [] });

/** Form values (strings, lines) from a stored configuration. */
export function toForm(props, config) {
  const form = {};
  for (const [k, p] of Object.entries(props)) {
    const v = config?.[k];
    if (v === undefined) continue;
    form[k] = p.type === 'array' && Array.isArray(v) ? v.join('\n') : p.type === 'boolean' ? !!v : String(v);
  }
  return form;
}

/** The configuration to send: empty fields left out (kept, or defaulted, by the daemon). */
export function fromForm(props, form) {
  const config = {};
  for (const [k, p] of Object.entries(props)) {
    const v = form[k];
    if (p.type === 'boolean') {
      if (v !== undefined) config[k] = !!v;
      continue;
    }
    if (v === undefined || String(v).trim() === '') continue;
    if (p.type === 'array') config[k] = String(v).split('\n').map((s) => s.trim()).filter(Boolean);
    else if (p.type === 'integer' || p.type === 'number') config[k] = Number(v);
    else config[k] = v;
  }
  return config;
}

/**
 * The inputs of every property of `schema`, in a row, required ones first.
 * `secretKeys` are password fields; `setKeys` the secrets already stored.
 */
export function SchemaFields({ schema, idPrefix, secretKeys = [], setKeys = [], form, onChange, keyPrefix = '' }) {
  const { props, required } = schemaParts(schema);
  return (
    <div class="row">
      {fieldOrder(props, required).map(([k, p]) => (
        <SchemaField key={`${keyPrefix}-${k}`} idPrefix={idPrefix} name={k} prop={p} required={required.includes(k)}
          secret={secretKeys.includes(k)} isSet={setKeys.includes(k)}
          value={form[k]} onChange={(v) => onChange({ ...form, [k]: v })} />
      ))}
    </div>
  );
}
