/**
 * Configuration docs generated from config/schema.json (through `settings` in src/config/load.ts).
 *
 *   node scripts/env-example.ts             write .env.example and the README's configuration table
 *   node scripts/env-example.ts --check     exit 1 when either is out of date
 *   node scripts/env-example.ts --markdown  print the README's configuration table
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { configSchema, settings, type Setting } from '../src/config/load.ts';

export const envExamplePath = new URL('../.env.example', import.meta.url);
export const readmePath = new URL('../README.md', import.meta.url);

type SchemaNode = { properties?: Record<string, SchemaNode>; enum?: unknown[] };

/** The allowed values of an enum setting, read from the schema itself. */
function allowedValues(setting: Setting): unknown[] | undefined {
  let node: SchemaNode | undefined = configSchema;
  for (const key of setting.path) node = node?.properties?.[key];
  return node?.enum;
}

/** The default as the environment variable would spell it (lists are comma-separated). */
function formatDefault(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return value.map(formatDefault).join(',');
  return value === undefined || value === null ? '' : JSON.stringify(value);
}

function notes(setting: Setting): string[] {
  const lines = [setting.description];
  const values = allowedValues(setting);
  if (values) lines.push(`One of: ${values.map(String).join(', ')}.`);
  else if (setting.expected) lines.push(`Format: ${setting.expected}.`);
  return lines.filter(Boolean);
}

export function renderEnvExample(list: readonly Setting[] = settings): string {
  const out = [
    '# Portcullis configuration. Generated from config/schema.json by `npm run config:docs`; do not edit.',
    '# Every variable is optional: the values shown are the defaults (config/default.json).',
    '# Secrets are commented out: set NAME, or NAME_FILE naming a file that holds the value',
    '# (Docker/Kubernetes secrets), never both.',
  ];
  for (const setting of list) {
    out.push('');
    for (const line of notes(setting)) out.push(`# ${line}`);
    const value = formatDefault(setting.default);
    if (setting.secret) {
      out.push('# Secret.');
      out.push(`# ${setting.env}=`);
      out.push(`# ${setting.env}_FILE=/run/secrets/${setting.env.toLowerCase()}`);
    } else if (value === '' && setting.default === undefined) {
      out.push(`# ${setting.env}=`);
    } else {
      out.push(`${setting.env}=${value}`);
    }
  }
  return `${out.join('\n')}\n`;
}

const cell = (text: string): string => text.replaceAll('|', '\\|').replaceAll('\n', ' ');

export function renderMarkdown(list: readonly Setting[] = settings): string {
  const rows = list.map((setting) => {
    const value = formatDefault(setting.default);
    const defaultCell = setting.secret
      ? `secret: env or \`${setting.env}_FILE\``
      : setting.default === undefined
        ? '—'
        : value === ''
          ? '(empty)'
          : `\`${cell(value)}\``;
    return `| \`${setting.env}\` | ${defaultCell} | ${cell(notes(setting).join(' '))} |`;
  });
  return `${['| Variable | Default | Description |', '|---|---|---|', ...rows].join('\n')}\n`;
}

const TABLE_START = '<!-- config-table:start -->';
const TABLE_END = '<!-- config-table:end -->';

/** The README with the configuration table between its markers replaced by `table`. */
export function withConfigTable(readme: string, table: string = renderMarkdown()): string {
  const start = readme.indexOf(TABLE_START);
  const end = readme.indexOf(TABLE_END);
  if (start === -1 || end < start) throw new Error(`README.md lost its configuration table markers (${TABLE_START} … ${TABLE_END})`);
  return `${readme.slice(0, start + TABLE_START.length)}\n${table.trim()}\n${readme.slice(end)}`;
}

function readOrEmpty(path: URL): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return ''; // missing counts as out of date
  }
}

function main(): void {
  const { values } = parseArgs({ options: { markdown: { type: 'boolean' }, check: { type: 'boolean' } } });
  if (values.markdown) {
    process.stdout.write(renderMarkdown());
    return;
  }
  const readme = readFileSync(readmePath, 'utf8');
  const files = [
    { path: envExamplePath, name: '.env.example', current: readOrEmpty(envExamplePath), expected: renderEnvExample() },
    { path: readmePath, name: "README.md's configuration table", current: readme, expected: withConfigTable(readme) },
  ];
  for (const file of files) {
    if (file.current === file.expected) continue;
    if (values.check) {
      process.stderr.write(`${file.name} is out of date; run: npm run config:docs\n`);
      process.exitCode = 1;
    } else {
      writeFileSync(file.path, file.expected);
      process.stderr.write(`wrote ${file.name}\n`);
    }
  }
}

if (import.meta.main) main();
