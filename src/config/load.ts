import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ErrorObject } from 'ajv';
import addFormats from 'ajv-formats';
import type { Config } from './types.ts';
import { trustProxyProblem } from '../shared/client-address.ts';

type SchemaNode = {
  type?: string;
  properties?: Record<string, SchemaNode>;
  'x-env'?: string;
  'x-secret'?: boolean;
  'x-expected'?: string;
  description?: string;
  [key: string]: unknown;
};

// Paths the SAST rules can see are fixed (security/detect-non-literal-fs-filename).
export const configSchema = JSON.parse(readFileSync(join(import.meta.dirname, '../../config/schema.json'), 'utf8')) as SchemaNode;
const defaults = JSON.parse(readFileSync(join(import.meta.dirname, '../../config/default.json'), 'utf8')) as Record<string, unknown>;

/** One configuration setting: where it lives in the object and which variable sets it. */
export type Setting = {
  path: string[];
  env: string;
  secret: boolean;
  type: string;
  description: string;
  expected?: string;
  default: unknown;
};

function collectSettings(node: SchemaNode, path: string[] = []): Setting[] {
  return Object.entries(node.properties ?? {}).flatMap(([key, child]) => {
    const childPath = [...path, key];
    if (child.properties) return collectSettings(child, childPath);
    const env = child['x-env'];
    if (!env) return [];
    return [
      {
        path: childPath,
        env,
        secret: child['x-secret'] === true,
        type: child.type ?? 'string',
        description: child.description ?? '',
        ...(child['x-expected'] ? { expected: child['x-expected'] } : {}),
        // eslint-disable-next-line security/detect-object-injection -- keys are property names of config/schema.json
        default: childPath.reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], defaults),
      },
    ];
  });
}

/** Every setting, in schema order. Also the source of the README's configuration table. */
export const settings: readonly Setting[] = collectSettings(configSchema);

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n${problems.join('\n')}`);
    this.problems = problems;
  }
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    // eslint-disable-next-line security/detect-object-injection -- keys come from the settings table (config/schema.json), never from a variable's value
    node[key] = { ...(node[key] as Record<string, unknown>) };
    // eslint-disable-next-line security/detect-object-injection -- as above: a settings-table key
    node = node[key] as Record<string, unknown>;
  }
  node[path.at(-1) as string] = value;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/** Reads NAME, or the file named by NAME_FILE (Docker/Kubernetes secrets); never both. */
function readVariable(env: NodeJS.ProcessEnv, setting: Setting, problems: string[]): string | undefined {
  const direct = env[setting.env];
  const file = setting.secret ? env[`${setting.env}_FILE`] : undefined;
  if (direct !== undefined && direct !== '' && file) {
    problems.push(`${setting.env}: set either ${setting.env} or ${setting.env}_FILE, not both`);
    return undefined;
  }
  if (file) {
    try {
      // eslint-disable-next-line security/detect-non-literal-fs-filename -- a *_FILE secret path the operator sets in the environment (Docker/Kubernetes secrets)
      return readFileSync(file, 'utf8').trim();
    } catch {
      problems.push(`${setting.env}_FILE: cannot read ${file}`);
      return undefined;
    }
  }
  return direct === '' ? undefined : direct;
}

const ajv = new Ajv2020({ allErrors: true, coerceTypes: true, useDefaults: true, strict: false });
addFormats.default(ajv);
const validate = ajv.compile(configSchema);

function describe(error: ErrorObject): string {
  const path = error.instancePath.split('/').filter(Boolean);
  if (error.keyword === 'required' || error.keyword === 'additionalProperties') {
    const missing = error.params as { missingProperty?: string; additionalProperty?: string };
    path.push(missing.missingProperty ?? missing.additionalProperty ?? '');
  }
  // Array items report their own index; name the variable that holds the whole list.
  // eslint-disable-next-line security/detect-object-injection -- i indexes an array of schema path segments
  const setting = settings.find((s) => s.path.every((key, i) => path[i] === key));
  const name = setting?.env ?? path.join('.');
  const expected =
    error.keyword === 'enum'
      ? `must be one of ${(error.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`
      : (setting?.expected ?? (setting?.secret ? 'has the wrong format' : (error.message ?? 'is invalid')));
  return `${name}: ${expected}`;
}

/** Settings that only make sense together (a certificate without its key serves nothing), and TRUST_PROXY's addresses. */
function crossFieldProblems(config: Config): string[] {
  const problems: string[] = [];
  const pairs = [
    ['tlsCertFile', 'TLS_CERT_FILE', 'tlsKeyFile', 'TLS_KEY_FILE'],
    ['apiClientCertFile', 'API_CLIENT_CERT_FILE', 'apiClientKeyFile', 'API_CLIENT_KEY_FILE'],
  ] as const;
  for (const [a, aEnv, b, bEnv] of pairs) {
    // eslint-disable-next-line security/detect-object-injection -- a and b are constant Config keys from the pairs list above
    if (config[a] && !config[b]) problems.push(`${bEnv}: must be set together with ${aEnv}`);
    // eslint-disable-next-line security/detect-object-injection -- a and b are constant Config keys from the pairs list above
    if (config[b] && !config[a]) problems.push(`${aEnv}: must be set together with ${bEnv}`);
  }
  const trustProxy = trustProxyProblem(config.trustProxy);
  if (trustProxy) problems.push(`TRUST_PROXY: ${trustProxy}`);
  if (config.authInternalPort > 0 && !(config.tlsCertFile && config.tlsClientCaFile)) {
    problems.push('AUTH_INTERNAL_PORT: needs TLS_CERT_FILE, TLS_KEY_FILE and TLS_CLIENT_CA_FILE (the internal listener is mTLS only)');
  }
  return problems;
}

/**
 * Variables earlier versions read. Setting one now would be silently ignored, which for a
 * security limit (a session lifetime) is worse than refusing to start: name the replacement.
 */
const retiredVariables: Readonly<Record<string, string>> = {
  SESSION_TTL: 'no longer read: use SESSION_IDLE_SECONDS (sliding) and SESSION_MAX_SECONDS (absolute)',
};

/**
 * default.json < environment variables < *_FILE secrets, validated against config/schema.json.
 * Throws ConfigError listing every problem, one line each. The only reader of the environment.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  for (const [name, advice] of Object.entries(retiredVariables)) {
    // eslint-disable-next-line security/detect-object-injection -- name is a constant of retiredVariables; env is only read
    if (env[name] !== undefined || env[`${name}_FILE`] !== undefined) problems.push(`${name}: ${advice}`);
  }
  const merged = structuredClone(defaults);
  for (const setting of settings) {
    const raw = readVariable(env, setting, problems);
    if (raw === undefined) continue;
    const value =
      setting.type === 'array'
        ? raw
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean)
        : raw;
    setPath(merged, setting.path, value);
  }
  if (!validate(merged)) problems.push(...(validate.errors ?? []).map(describe));
  else problems.push(...crossFieldProblems(merged as unknown as Config));
  if (problems.length > 0) throw new ConfigError([...new Set(problems)]);
  return deepFreeze(merged as unknown as Config);
}
