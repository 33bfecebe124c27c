import { readdirSync, readFileSync } from 'node:fs';
import { expect } from 'chai';
import { parseAllDocuments, parse, stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.ts';
import { productionSettingProblems } from '../../src/config/production-checks.ts';

/**
 * There is no helm binary in CI: the chart in docker/helm/portcullis is rendered here by a small
 * renderer for the subset of Go templates it uses ({{ path }}, | quote, toYaml … | nindent N,
 * if / if not, range $k, $v := map, {{- -}} trimming). A template using anything else fails the
 * test, which keeps the chart simple. Every rendered document is parsed and checked.
 */
const chartDir = new URL('../../docker/helm/portcullis/', import.meta.url);
const read = (path: string): string => readFileSync(new URL(path, chartDir), 'utf8');

type Scope = { root: Record<string, unknown>; vars: Record<string, unknown>; dot: unknown };
type Node = { text: string } | { action: string } | { block: 'if' | 'range'; head: string; body: Node[] };

function parseTemplate(source: string): Node[] {
  // Trim markers first: {{- eats whitespace before, -}} after.
  const trimmed = source.replace(/\s*\{\{-/g, '{{').replace(/-\}\}\s*/g, '}}');
  const tokens = trimmed.split(/(\{\{.*?\}\})/s);
  const stack: Node[][] = [[]];
  const heads: { block: 'if' | 'range'; head: string }[] = [];
  for (const token of tokens) {
    const match = /^\{\{\s*(.*?)\s*\}\}$/s.exec(token);
    const top = stack.at(-1) as Node[];
    if (!match) {
      if (token) top.push({ text: token });
      continue;
    }
    const action = match[1] as string;
    const block = /^(if|range)\s+(.*)$/s.exec(action);
    if (block) {
      heads.push({ block: block[1] as 'if' | 'range', head: block[2] as string });
      stack.push([]);
    } else if (action === 'end') {
      const body = stack.pop() as Node[];
      const head = heads.pop();
      if (!head) throw new Error('unbalanced {{ end }}');
      (stack.at(-1) as Node[]).push({ ...head, body });
    } else {
      top.push({ action });
    }
  }
  if (heads.length > 0) throw new Error('unclosed block');
  return stack[0] as Node[];
}

function lookup(path: string, scope: Scope): unknown {
  if (path.startsWith('"')) return JSON.parse(path) as unknown;
  const [head = '', ...rest] = path.split('.');
  let value: unknown;
  if (head === '' || head === '$') value = head === '$' ? scope.root : scope.dot;
  else if (head.startsWith('$')) value = scope.vars[head];
  else throw new Error(`unsupported expression ${path}`);
  for (const key of rest.filter(Boolean)) value = (value as Record<string, unknown> | undefined)?.[key];
  if (value === undefined) throw new Error(`${path} is not defined`);
  return value;
}

function evaluate(expression: string, scope: Scope): unknown {
  const [first = '', ...filters] = expression.split('|').map((part) => part.trim());
  const words = first.split(/\s+/);
  let value: unknown = words[0] === 'toYaml' ? stringify(lookup(words[1] as string, scope)).trimEnd() : lookup(first, scope);
  if (words[0] !== 'toYaml' && words.length > 1) throw new Error(`unsupported expression ${first}`);
  for (const filter of filters) {
    const [name, argument] = filter.split(/\s+/);
    if (name === 'quote') value = JSON.stringify(String(value));
    else if (name === 'nindent')
      value = `\n${String(value)
        .split('\n')
        .map((line) => ' '.repeat(Number(argument)) + line)
        .join('\n')}`;
    else throw new Error(`unsupported filter ${filter}`);
  }
  return value;
}

function renderNodes(nodes: Node[], scope: Scope): string {
  return nodes
    .map((node): string => {
      if ('text' in node) return node.text;
      if ('action' in node) {
        const value = evaluate(node.action, scope);
        if (typeof value === 'object' && value !== null) throw new Error(`${node.action} renders an object: use toYaml`);
        return String(value);
      }
      if (node.block === 'if') {
        const negated = node.head.startsWith('not ');
        const truthy = Boolean(evaluate(negated ? node.head.slice(4) : node.head, scope));
        return truthy !== negated ? renderNodes(node.body, scope) : '';
      }
      const range = /^\$(\w+),\s*\$(\w+)\s*:=\s*(.+)$/.exec(node.head);
      if (!range) throw new Error(`unsupported range ${node.head}`);
      const map = lookup(range[3] as string, scope) as Record<string, unknown>;
      return Object.keys(map)
        .sort()
        .map((key) =>
          renderNodes(node.body, { ...scope, dot: map[key], vars: { ...scope.vars, [`$${range[1]}`]: key, [`$${range[2]}`]: map[key] } }),
        )
        .join('');
    })
    .join('');
}

type Values = Record<string, unknown>;
function merge(base: Values, override: Values): Values {
  const out: Values = { ...base };
  for (const [key, value] of Object.entries(override)) {
    out[key] = value && typeof value === 'object' && !Array.isArray(value) ? merge((base[key] ?? {}) as Values, value as Values) : value;
  }
  return out;
}

type Manifest = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: Record<string, unknown>;
};

const chart = parse(read('Chart.yaml')) as { apiVersion: string; name: string; version: string; appVersion: string };
const defaults = parse(read('values.yaml')) as Values;
const templates = readdirSync(new URL('templates/', chartDir)).filter((file) => file.endsWith('.yaml'));

function render(overrides: Values = {}): Manifest[] {
  const root = {
    Values: merge(defaults, overrides),
    Release: { Name: 'rel', Namespace: 'ns' },
    Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion },
  };
  return templates.flatMap((file) => {
    const text = renderNodes(parseTemplate(read(`templates/${file}`)), { root, vars: { $: root }, dot: root });
    return parseAllDocuments(text).flatMap((doc) => {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}\n${text}`);
      const manifest = doc.toJS() as Manifest | null;
      return manifest ? [manifest] : [];
    });
  });
}

type Container = {
  name: string;
  image: string;
  command: string[];
  ports: { name: string; containerPort: number }[];
  env: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean } } }[];
  readinessProbe: { httpGet: { path: string; port: string; scheme?: string } };
  livenessProbe: { httpGet: { path: string; port: string; scheme?: string } };
  volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
  securityContext: { readOnlyRootFilesystem: boolean; allowPrivilegeEscalation: boolean; capabilities: { drop: string[] } };
};
type PodSpec = {
  securityContext: { runAsNonRoot: boolean; runAsUser: number };
  containers: Container[];
  automountServiceAccountToken: boolean;
  volumes: { name: string; secret?: { secretName: string; defaultMode?: number } }[];
};
type Selector = { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values: string[] }[] };
type Peer = { namespaceSelector?: Selector; podSelector?: Selector; ipBlock?: { cidr: string; except?: string[] } };
type Rule = { from?: Peer[]; to?: Peer[]; ports?: { port: number | string; protocol?: string }[] };

type SecretKeys = { masterKey: string; vaultKey: string; databaseUrl: string; redisUrl: string };
const values = defaults as {
  secret: { name: string; keys: Record<string, string> };
  dbRoles: { authRole: string; apiRole: string };
  metrics: { port: number };
  components: Record<
    string,
    {
      port: number;
      internalPort: number;
      tlsSecretName: string;
      minAvailable: number;
      secretKeys: SecretKeys;
      autoscaling: { minReplicas: number; maxReplicas: number };
    }
  >;
  networkPolicy: {
    gateway: { namespaceSelector: Record<string, string>; podSelector: Record<string, string> };
    dns: { namespaceSelector: Record<string, string>; podSelector: Record<string, string> };
    dataStores: { postgresPodSelector: Record<string, string>; redisPodSelector: Record<string, string> };
  };
};
const components = ['api', 'auth'];
const byKind = (manifests: Manifest[], kind: string) => manifests.filter((m) => m.kind === kind);
const named = (manifests: Manifest[], kind: string, name: string): Manifest => {
  const found = manifests.find((m) => m.kind === kind && m.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name}`);
  return found;
};
const podOf = (deployment: Manifest) => deployment.spec.template as { metadata: { labels: Record<string, string> }; spec: PodSpec };

describe('docker/helm/portcullis', function () {
  const manifests = render();

  it('has a v2 Chart.yaml and pins the image to the chart appVersion (never latest)', function () {
    expect(chart).to.include({ apiVersion: 'v2', name: 'portcullis' });
    expect(chart.version).to.match(/^\d+\.\d+\.\d+$/);
    expect((defaults.image as { tag: string }).tag)
      .to.equal(chart.appVersion)
      .and.not.equal('latest');
  });

  it('renders every template to documents with apiVersion, kind and metadata.name', function () {
    expect(templates).to.include.members(['deployment.yaml', 'service.yaml', 'pdb.yaml', 'hpa.yaml', 'networkpolicy.yaml', 'ingress.yaml']);
    for (const manifest of [...manifests, ...render({ ingress: { enabled: true }, networkPolicy: { dataStores: { enabled: true } } })]) {
      expect(manifest.apiVersion, JSON.stringify(manifest).slice(0, 80)).to.be.a('string').and.not.equal('');
      expect(manifest.kind).to.be.a('string');
      expect(manifest.metadata.name).to.match(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    }
  });

  it('runs auth and api Deployments with /readyz readiness, /healthz liveness, as non-root on a read-only root', function () {
    for (const name of components) {
      const pod = podOf(named(manifests, 'Deployment', `rel-${name}`)).spec;
      expect(pod.securityContext).to.include({ runAsNonRoot: true });
      expect(pod.securityContext.runAsUser).to.be.above(0);
      expect(pod.automountServiceAccountToken).to.equal(false);
      const [container] = pod.containers;
      if (!container) throw new Error('no container');
      expect(container.command).to.deep.equal(['node', 'src/main.ts', '--only', name]);
      // The pods serve HTTPS (internalTls, S7); the kubelet probes them directly.
      expect(container.readinessProbe.httpGet).to.deep.equal({ path: '/readyz', port: 'http', scheme: 'HTTPS' });
      expect(container.livenessProbe.httpGet).to.deep.equal({ path: '/healthz', port: 'http', scheme: 'HTTPS' });
      expect(container.ports).to.deep.include({ name: 'http', containerPort: values.components[name]?.port });
      expect(container.securityContext).to.deep.include({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
      expect(container.securityContext.capabilities.drop).to.deep.equal(['ALL']);
      expect(container.image).to.not.match(/:latest$/);
    }
  });

  it('takes the keys, DATABASE_URL, REDIS_URL and COOKIE_KEYS from the Secret named in values.yaml, never literally', function () {
    const expected: Record<string, Record<string, string | undefined>> = {
      auth: {
        MASTER_KEY: values.components.auth?.secretKeys.masterKey,
        AUDIT_KEY: values.secret.keys.auditKey,
        DATABASE_URL: values.components.auth?.secretKeys.databaseUrl,
        REDIS_URL: values.components.auth?.secretKeys.redisUrl,
        COOKIE_KEYS: values.secret.keys.cookieKeys,
      },
      api: {
        VAULT_KEY: values.components.api?.secretKeys.vaultKey,
        AUDIT_KEY: values.secret.keys.auditKey,
        DATABASE_URL: values.components.api?.secretKeys.databaseUrl,
        REDIS_URL: values.components.api?.secretKeys.redisUrl,
      },
    };
    for (const name of components) {
      const [container] = podOf(named(manifests, 'Deployment', `rel-${name}`)).spec.containers;
      for (const [variable, key] of Object.entries(expected[name] ?? {})) {
        const entry = container?.env.find((e) => e.name === variable);
        expect(key, `${name} ${variable}`).to.be.a('string').and.not.equal('');
        expect(entry, `${name} ${variable}`).to.not.have.property('value');
        expect(entry?.valueFrom?.secretKeyRef, `${name} ${variable}`).to.include({ name: values.secret.name, key });
      }
      // Names must be ones config/schema.json knows (a typo would silently fall back to a default).
      const schema = readFileSync(new URL('../../config/schema.json', import.meta.url), 'utf8');
      for (const entry of container?.env ?? []) expect(schema, entry.name).to.include(`"x-env": "${entry.name}"`);
    }
    const job = named(manifests, 'Job', 'rel-migrate');
    expect(JSON.stringify(job)).to.include(`"secretKeyRef":{"name":"${values.secret.name}","key":"${values.secret.keys.databaseUrl}"}`);
  });

  it('S2 takes MASTER_KEY_PREVIOUS from an optional key of the same Secret, so a rotation is a Secret change and a rollout restart', function () {
    // Where MASTER_KEY is (the auth pods; the API has neither, S3), and VAULT_KEY_PREVIOUS where VAULT_KEY is.
    for (const [name, previous, secretKey] of [
      ['auth', 'MASTER_KEY_PREVIOUS', values.secret.keys.masterKeyPrevious],
      ['api', 'VAULT_KEY_PREVIOUS', values.secret.keys.vaultKeyPrevious],
    ] as const) {
      const [container] = podOf(named(manifests, 'Deployment', `rel-${name}`)).spec.containers;
      const entry = container?.env.find((e) => e.name === previous);
      expect(entry?.valueFrom?.secretKeyRef, name).to.deep.equal({ name: values.secret.name, key: secretKey, optional: true });
    }
    const [api] = podOf(named(manifests, 'Deployment', 'rel-api')).spec.containers;
    expect(api?.env.map((e) => e.name)).to.not.include('MASTER_KEY_PREVIOUS');
  });

  it('exposes only the HTTP port through Services and the Ingress; the metrics port stays on the pods', function () {
    for (const name of components) {
      const service = named(manifests, 'Service', `rel-${name}`);
      const ports = service.spec.ports as { port: number; targetPort: string }[];
      expect(ports).to.deep.equal([{ name: 'http', port: values.components[name]?.port, targetPort: 'http' }]);
      expect(service.spec.selector).to.deep.equal(podOf(named(manifests, 'Deployment', `rel-${name}`)).metadata.labels);
      const [container] = podOf(named(manifests, 'Deployment', `rel-${name}`)).spec.containers;
      expect(container?.ports).to.deep.include({ name: 'metrics', containerPort: values.metrics.port });
      expect(container?.env).to.deep.include({ name: 'METRICS_PORT', value: String(values.metrics.port) });
    }
    expect(byKind(manifests, 'Ingress')).to.have.length(0, 'the Ingress is opt-in');
    const [ingress] = byKind(render({ ingress: { enabled: true } }), 'Ingress');
    const backends = JSON.stringify(ingress?.spec.rules);
    expect(backends).to.include('"name":"rel-auth"').and.include('"name":"rel-api"').and.not.include('metrics');
    expect(ingress?.spec.tls).to.be.an('array').with.length(1);
  });

  it('keeps one pod of each role through voluntary disruptions and autoscales each Deployment', function () {
    for (const name of components) {
      const pdb = named(manifests, 'PodDisruptionBudget', `rel-${name}`);
      expect(pdb.apiVersion).to.equal('policy/v1');
      expect(pdb.spec.minAvailable).to.equal(values.components[name]?.minAvailable).and.be.at.least(1);
      expect((pdb.spec.selector as Selector).matchLabels).to.deep.equal(
        podOf(named(manifests, 'Deployment', `rel-${name}`)).metadata.labels,
      );
      const hpa = named(manifests, 'HorizontalPodAutoscaler', `rel-${name}`);
      expect(hpa.apiVersion).to.equal('autoscaling/v2');
      expect(hpa.spec.scaleTargetRef).to.deep.equal({ apiVersion: 'apps/v1', kind: 'Deployment', name: `rel-${name}` });
      expect(hpa.spec.minReplicas)
        .to.be.at.least(2)
        .and.be.above(Number(pdb.spec.minAvailable) - 1);
      expect(hpa.spec.maxReplicas).to.be.above(hpa.spec.minReplicas as number);
      expect(JSON.stringify(hpa.spec.metrics)).to.include('"name":"cpu"');
    }
  });

  it('lets only the gateway (and the API, and Prometheus on the metrics port) reach the app pods', function () {
    const policy = named(manifests, 'NetworkPolicy', 'rel-app');
    const selector = policy.spec.podSelector as Selector;
    expect(selector.matchExpressions).to.deep.include({ key: 'app.kubernetes.io/component', operator: 'In', values: ['auth', 'api'] });
    expect(policy.spec.policyTypes).to.have.members(['Ingress', 'Egress']);
    const ingress = policy.spec.ingress as Rule[];
    const gateway = ingress.find((rule) => JSON.stringify(rule.ports) === '[{"port":"http"}]');
    expect(gateway?.from).to.deep.equal([
      {
        namespaceSelector: { matchLabels: values.networkPolicy.gateway.namespaceSelector },
        podSelector: { matchLabels: values.networkPolicy.gateway.podSelector },
      },
    ]);
    for (const rule of ingress) {
      expect(rule.from, 'no rule admits everyone').to.be.an('array').that.is.not.empty;
      for (const peer of rule.from ?? []) expect(peer.ipBlock?.cidr, 'no rule admits everyone').to.not.equal('0.0.0.0/0');
    }
    const metricsRule = ingress.find((rule) => rule.ports?.some((p) => p.port === 'metrics'));
    expect(metricsRule?.from?.[0]?.namespaceSelector).to.not.equal(undefined);
    const egressPorts = (policy.spec.egress as Rule[]).flatMap((rule) => (rule.ports ?? []).map((p) => p.port));
    expect(egressPorts).to.include.members([53, 5432, 6379]);
  });

  it('lets only the Portcullis pods reach in-namespace Postgres and Redis', function () {
    expect(byKind(manifests, 'NetworkPolicy').map((m) => m.metadata.name)).to.deep.equal(['rel-app']);
    const withStores = render({ networkPolicy: { dataStores: { enabled: true } } });
    for (const [store, port] of [
      ['postgres', 5432],
      ['redis', 6379],
    ] as const) {
      const policy = named(withStores, 'NetworkPolicy', `rel-${store}`);
      expect((policy.spec.podSelector as Selector).matchLabels).to.not.deep.equal({});
      const [rule, ...more] = policy.spec.ingress as Rule[];
      expect(more).to.have.length(0);
      expect(rule?.from).to.deep.equal([
        { podSelector: { matchLabels: { 'app.kubernetes.io/name': 'portcullis', 'app.kubernetes.io/instance': 'rel' } } },
      ]);
      expect(rule?.ports).to.deep.equal([{ port }]);
    }
    expect(byKind(render({ networkPolicy: { enabled: false } }), 'NetworkPolicy')).to.have.length(0);
  });

  it('drains within the pod termination grace period', function () {
    const pod = podOf(named(manifests, 'Deployment', 'rel-auth'));
    const env = Object.fromEntries((pod.spec.containers[0]?.env ?? []).map((e) => [e.name, e.value]));
    const budget = Number(env.SHUTDOWN_DELAY) + Number(env.SHUTDOWN_TIMEOUT) + 5;
    expect((pod.spec as unknown as { terminationGracePeriodSeconds: number }).terminationGracePeriodSeconds).to.be.at.least(budget);
  });

  const containerOf = (set: Manifest[], name: string): Container => {
    const [container] = podOf(named(set, 'Deployment', `rel-${name}`)).spec.containers;
    if (!container) throw new Error(`no ${name} container`);
    return container;
  };
  const envOf = (container: Container): Record<string, string | undefined> =>
    Object.fromEntries(container.env.map((e) => [e.name, e.value]));

  it("R13 TRUST_PROXY names the gateway's address range, never true, and production accepts it", function () {
    const production = {
      NODE_ENV: 'production',
      ISSUER: String(defaults.issuer),
      API_URL: String(defaults.apiUrl),
      MASTER_KEY: `${'A'.repeat(43)}=`,
      VAULT_KEY: `${'C'.repeat(43)}=`,
      AUDIT_KEY: `${'B'.repeat(43)}=`,
      DATABASE_URL: 'postgres://db/x',
    };
    for (const name of components) {
      const trustProxy = envOf(containerOf(manifests, name)).TRUST_PROXY ?? '';
      expect(trustProxy, name).to.equal('10.0.0.0/8');
      expect(productionSettingProblems(loadConfig({ ...production, TRUST_PROXY: trustProxy })), name).to.deep.equal([]);
    }
    // Set to true, the app would refuse to start in production.
    const careless = envOf(containerOf(render({ trustProxy: 'true' }), 'auth')).TRUST_PROXY ?? '';
    expect(productionSettingProblems(loadConfig({ ...production, TRUST_PROXY: careless })).join(' ')).to.include('TRUST_PROXY=true');
  });

  it("S7 every pod serves HTTPS, and the API fetches the JWKS from the auth pods' mTLS-only listener with its certificate", function () {
    const tlsDir = '/etc/portcullis/tls';
    const auth = containerOf(manifests, 'auth');
    const api = containerOf(manifests, 'api');
    expect(envOf(auth)).to.include({
      TLS_CERT_FILE: `${tlsDir}/tls.crt`,
      TLS_KEY_FILE: `${tlsDir}/tls.key`,
      TLS_CLIENT_CA_FILE: `${tlsDir}/ca.crt`,
      AUTH_INTERNAL_PORT: String(values.components.auth?.internalPort),
    });
    expect(auth.ports).to.deep.include({ name: 'internal', containerPort: values.components.auth?.internalPort });
    expect(envOf(api)).to.include({
      JWKS_URL: `https://rel-auth-internal:${values.components.auth?.internalPort}/jwks`,
      API_CA_FILE: `${tlsDir}/ca.crt`,
      API_CLIENT_CERT_FILE: `${tlsDir}/tls.crt`,
      API_CLIENT_KEY_FILE: `${tlsDir}/tls.key`,
      TLS_CERT_FILE: `${tlsDir}/tls.crt`,
    });
    expect(envOf(auth)).to.not.have.property('JWKS_URL');
    for (const name of components) {
      const container = containerOf(manifests, name);
      const pod = podOf(named(manifests, 'Deployment', `rel-${name}`)).spec;
      expect(container.volumeMounts).to.deep.include({ name: 'tls', mountPath: tlsDir, readOnly: true });
      expect(pod.volumes).to.deep.include({
        name: 'tls',
        secret: { secretName: values.components[name]?.tlsSecretName, defaultMode: 0o440 },
      });
      for (const [variable, value] of Object.entries(envOf(container)))
        expect(value ?? '', `${name} ${variable} is no plain-http URL`).to.not.match(/^http:/);
    }
    // The internal listener has its own Service, which no Ingress routes to.
    const internal = named(manifests, 'Service', 'rel-auth-internal');
    expect(internal.spec.ports).to.deep.equal([{ name: 'internal', port: values.components.auth?.internalPort, targetPort: 'internal' }]);
    expect(internal.spec.selector).to.deep.equal(podOf(named(manifests, 'Deployment', 'rel-auth')).metadata.labels);
    const [ingress] = byKind(render({ ingress: { enabled: true } }), 'Ingress');
    expect(JSON.stringify(ingress?.spec)).to.not.include('internal');
    expect(ingress?.metadata.annotations).to.include({ 'nginx.ingress.kubernetes.io/backend-protocol': 'HTTPS' });
    // Only the API pods reach the internal listener.
    const ingressRules = named(manifests, 'NetworkPolicy', 'rel-app').spec.ingress as Rule[];
    const fromApi = ingressRules.find((rule) =>
      rule.from?.some((peer) => peer.podSelector?.matchLabels?.['app.kubernetes.io/component'] === 'api'),
    );
    expect(fromApi?.ports).to.deep.equal([{ port: values.components.auth?.internalPort }]);
    // The production checks accept the JWKS_URL the chart sets.
    const production = {
      NODE_ENV: 'production',
      ISSUER: String(defaults.issuer),
      API_URL: String(defaults.apiUrl),
      VAULT_KEY: `${'C'.repeat(43)}=`,
      AUDIT_KEY: `${'B'.repeat(43)}=`,
      DATABASE_URL: 'postgres://db/x',
    };
    expect(productionSettingProblems(loadConfig({ ...production, JWKS_URL: envOf(api).JWKS_URL ?? '' }), {}, ['api'])).to.deep.equal([]);

    // internalTls off: plain http on the pod network, and the API fetches ISSUER/jwks (https) instead.
    const plain = render({ internalTls: { enabled: false } });
    for (const name of components) {
      const container = containerOf(plain, name);
      expect(envOf(container), name).to.not.have.any.keys('TLS_CERT_FILE', 'JWKS_URL', 'API_CLIENT_CERT_FILE', 'AUTH_INTERNAL_PORT');
      expect(container.readinessProbe.httpGet).to.deep.equal({ path: '/readyz', port: 'http' });
    }
    expect(byKind(plain, 'Service').map((m) => m.metadata.name)).to.have.members(['rel-auth', 'rel-api']);
  });

  it('S3 MASTER_KEY goes to the auth pods only and VAULT_KEY to the API pods only; each connects as its own database role and Redis user, set up by the migrate Job', function () {
    const secretOf = (container: Container, variable: string) =>
      container.env.find((e) => e.name === variable)?.valueFrom?.secretKeyRef?.key;
    const auth = containerOf(manifests, 'auth');
    const api = containerOf(manifests, 'api');
    expect(auth.env.map((e) => e.name))
      .to.include('MASTER_KEY')
      .and.not.include('VAULT_KEY');
    expect(api.env.map((e) => e.name))
      .to.include('VAULT_KEY')
      .and.not.include.members(['MASTER_KEY', 'COOKIE_KEYS']);
    // Neither pod gets the tables' owner: that URL is the migrate Job's.
    expect(secretOf(auth, 'DATABASE_URL')).to.equal('auth-database-url');
    expect(secretOf(api, 'DATABASE_URL')).to.equal('api-database-url');
    expect(secretOf(api, 'REDIS_URL')).to.equal('api-redis-url').and.not.equal(secretOf(auth, 'REDIS_URL'));
    for (const container of [auth, api]) expect(secretOf(container, 'DATABASE_URL')).to.not.equal(values.secret.keys.databaseUrl);
    const job = named(manifests, 'Job', 'rel-migrate');
    const jobPod = (job.spec.template as { spec: PodSpec & { securityContext: { fsGroup?: number } } }).spec;
    const [migrate] = jobPod.containers;
    expect(migrate?.command.join(' ')).to.match(
      new RegExp(
        `node src/cli\\.ts migrate && exec node src/cli\\.ts db roles --auth-role ${values.dbRoles.authRole} --api-role ${values.dbRoles.apiRole} --auth-password-file (\\S+) --api-password-file (\\S+)`,
      ),
    );
    expect(secretOf(migrate as Container, 'DATABASE_URL')).to.equal(values.secret.keys.databaseUrl);
    expect(jobPod.volumes).to.deep.include({
      name: 'db-roles',
      secret: {
        secretName: values.secret.name,
        defaultMode: 0o440,
        items: [
          { key: values.secret.keys.authDbPassword, path: 'auth-password' },
          { key: values.secret.keys.apiDbPassword, path: 'api-password' },
        ],
      },
    });
    expect(jobPod.securityContext.fsGroup).to.equal(1000);
    // Without managed roles the Job only migrates.
    const [plain] = (named(render({ dbRoles: { enabled: false } }), 'Job', 'rel-migrate').spec.template as { spec: PodSpec }).spec
      .containers;
    expect(plain?.command).to.deep.equal(['node', 'src/cli.ts', 'migrate']);
    // The upgrade Job that re-wraps the data keys is opt-in, and the only pod with both keys.
    expect(byKind(manifests, 'Job').map((m) => m.metadata.name)).to.deep.equal(['rel-migrate']);
    const rewrap = named(render({ rewrapVault: { enabled: true } }), 'Job', 'rel-rewrap-vault');
    expect(rewrap.metadata.annotations).to.include({ 'helm.sh/hook': 'pre-upgrade', 'helm.sh/hook-weight': '1' });
    const [rewrapper] = (rewrap.spec.template as { spec: PodSpec }).spec.containers;
    expect(rewrapper?.command).to.deep.equal(['node', 'src/cli.ts', 'keys', 'rewrap-vault']);
    expect(secretOf(rewrapper as Container, 'DATABASE_URL')).to.equal('api-database-url');
    expect(rewrapper?.env.map((e) => e.name).sort()).to.deep.equal([
      'DATABASE_URL',
      'MASTER_KEY',
      'MASTER_KEY_PREVIOUS',
      'VAULT_KEY',
      'VAULT_KEY_PREVIOUS',
    ]);
    // Production accepts each pod's keys for its role, and refuses the API given MASTER_KEY.
    const base = {
      NODE_ENV: 'production',
      ISSUER: String(defaults.issuer),
      API_URL: String(defaults.apiUrl),
      DATABASE_URL: 'postgres://db/x',
      AUDIT_KEY: `${'B'.repeat(43)}=`,
      TRUST_PROXY: '10.0.0.0/8',
    };
    const keysOf = (container: Container) =>
      Object.fromEntries(container.env.filter((e) => /_KEY$/.test(e.name)).map((e) => [e.name, `${'A'.repeat(43)}=`]));
    expect(productionSettingProblems(loadConfig({ ...base, ...keysOf(auth) }), {}, ['auth'])).to.deep.equal([]);
    expect(productionSettingProblems(loadConfig({ ...base, ...keysOf(api) }), {}, ['api'])).to.deep.equal([]);
    const careless = containerOf(render({ components: { api: { secretKeys: { masterKey: 'master-key' } } } }), 'api');
    expect(productionSettingProblems(loadConfig({ ...base, ...keysOf(careless) }), {}, ['api']).join(' ')).to.include(
      'MASTER_KEY must not be given to the API',
    );
  });

  it('S9 the app pods reach only DNS at kube-dns, Postgres, Redis and the auth pods; the internet only when allowed', function () {
    const egressOf = (set: Manifest[]) => named(set, 'NetworkPolicy', 'rel-app').spec.egress as Rule[];
    const egress = egressOf(manifests);
    for (const rule of egress) {
      expect(rule.to, `every egress rule names its destination: ${JSON.stringify(rule)}`).to.be.an('array').that.is.not.empty;
      for (const peer of rule.to ?? []) expect(peer.ipBlock?.cidr, JSON.stringify(rule)).to.not.equal('0.0.0.0/0');
    }
    const dns = egress.filter((rule) => rule.ports?.some((p) => p.port === 53));
    expect(dns).to.have.length(1);
    expect(dns[0]?.to).to.deep.equal([
      {
        namespaceSelector: { matchLabels: values.networkPolicy.dns.namespaceSelector },
        podSelector: { matchLabels: values.networkPolicy.dns.podSelector },
      },
    ]);
    const ports = egress.flatMap((rule) => (rule.ports ?? []).map((p) => p.port));
    expect(ports).to.have.members([53, 53, 5432, 6379, values.components.auth?.internalPort]);
    expect(ports).to.not.include(443);

    // Opted in: 443 to the internet, never to the private ranges.
    const https = egressOf(render({ networkPolicy: { allowHttpsEgress: true } })).find((rule) => rule.ports?.some((p) => p.port === 443));
    expect(https?.to).to.deep.equal([
      { ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', '100.64.0.0/10'] } },
    ]);
    // In-namespace data stores: reached by their pods' labels, no address range at all.
    const stores = egressOf(render({ networkPolicy: { dataStores: { enabled: true } } }));
    expect(stores.flatMap((rule) => rule.to ?? []).some((peer) => peer.ipBlock)).to.equal(false);
    expect(stores.flatMap((rule) => rule.to ?? [])).to.deep.include({
      podSelector: { matchLabels: values.networkPolicy.dataStores.postgresPodSelector },
    });
  });
});
