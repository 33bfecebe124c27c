/**
 * Portcullis benchmark suite: `npm run bench` (full, ~30 min on a quiet 2-core machine) or
 * `npm run bench -- --quick` (smoke run). Starts its own servers, seeds its own data, cleans up.
 * Method and targets: bench/README.md.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';
import { Redis } from 'ioredis';
import { runList, runOpenLoop, type DriverResult } from './lib/driver.ts';
import { Browserless, codeFlow, deviceCode, mintRefreshTokens, pool, tokenRequest } from './lib/flows.ts';
import { measureMemory, type MemoryReport } from './lib/memory.ts';
import { DEVICE_GRANT, preparePortcullis, REDIRECT_URI, REDIS_URL, type Portcullis } from './lib/portcullis.ts';
import { loadServerSecret, SERVER_SECRETS } from '../src/store/server-secrets.ts';
import { cpuMicros, hasCommand, machineDescription, pin, rssBytes } from './lib/proc.ts';
import { renderReport, withBenchSection, type Row } from './lib/report.ts';
import { freePort, repoRoot, startServer, type Server } from './lib/servers.ts';
import { median } from './lib/stats.ts';
import { accepts, basicAuth, form, type Target } from './lib/target.ts';
import { runWrk } from './lib/wrk.ts';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    'cpu-prof': { type: 'boolean', default: false },
    only: { type: 'string' },
    /** Measure only the subjects whose label matches this regular expression (profiling one path). */
    subjects: { type: 'string' },
    /** Extra node flags for the servers, space-separated (e.g. --trace-gc); their output goes to bench/out. */
    'node-flags': { type: 'string' },
    rounds: { type: 'string' },
    grants: { type: 'string' },
  },
});
const quick = args.quick;
const settings = {
  rounds: Number(args.rounds ?? (quick ? 1 : 5)),
  warmSeconds: quick ? 1 : 5,
  seconds: quick ? 2 : 10,
  openSeconds: quick ? 2 : 10,
  connections: 32,
  refreshPool: quick ? 150 : 2000,
  logins: quick ? 8 : 60,
  grants: Number(args.grants ?? (quick ? 1000 : 100_000)),
  growthLevels: quick ? [1000] : [1000, 10_000, 100_000],
};
const only = args.only ? new Set(args.only.split(',')) : undefined;
const wanted = (scenario: string) => !only || only.has(scenario);
const outDir = `${repoRoot}bench/out`;
const SERVER_CPU = '1';
const GENERATOR_CPU = '0';

const log = (message: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);

// ---------------------------------------------------------------------------------------------
// Preconditions
if (!hasCommand('wrk')) {
  process.stderr.write('wrk is not installed. On Debian/Ubuntu: sudo apt-get update && sudo apt-get install -y wrk\n');
  process.exit(2);
}
if (!hasCommand('taskset')) {
  process.stderr.write('taskset is not installed (package util-linux): sudo apt-get install -y util-linux\n');
  process.exit(2);
}
const machine = machineDescription();
if (machine.nproc < 2) {
  process.stderr.write('the suite needs 2 cores: one for the server under test, one for the load generator\n');
  process.exit(2);
}
// The generator (this process, wrk, the Node drivers) runs on core 0; servers on core 1.
pin(process.pid, GENERATOR_CPU);
mkdirSync(outDir, { recursive: true });
if (args['node-flags']) process.env.BENCH_SERVER_LOG_DIR = outDir;

// ---------------------------------------------------------------------------------------------
// Measurement

/** One subject: a server process and how to load it. */
type Subject = {
  scenario: string;
  label: string;
  role: 'ours' | 'floor';
  server: () => Server;
  /** Static request (wrk for saturation, Node open loop for latency). */
  target?: () => Target | Promise<Target>;
  /** Custom closed-loop run (one-use tokens, multi-step flows); returns what it did. */
  custom?: (round: number) => Promise<{ prepare: () => Promise<unknown>; run: (prepared: unknown) => Promise<DriverResult> }>;
  /** No latency open loop (the server ceiling: half its rate is more than the Node driver can send). */
  noOpenLoop?: true;
  /** Open loop for custom subjects: up to `count` one-use requests (fewer shortens the run). */
  openLoop?: (count: number) => Promise<{ next: (i: number) => Target; count: number }>;
};

type Round = { requests: number; seconds: number; cpuUs: number; errors: number; p99Ms: number; sample?: string };
type Measured = { subject: Subject; rounds: Round[]; open?: DriverResult & { rate: number } };

async function measureOnce(subject: Subject, seconds: number, round: number): Promise<Round> {
  const server = subject.server();
  if (subject.target) {
    const target = await subject.target();
    const before = cpuMicros(server.pid);
    const r = await runWrk(target, { seconds, connections: settings.connections });
    const cpu = cpuMicros(server.pid) - before;
    return {
      requests: r.requests,
      seconds: r.seconds,
      cpuUs: cpu,
      errors: r.bad + r.socketErrors,
      p99Ms: r.p99Ms,
      ...(r.sample ? { sample: r.sample } : {}),
    };
  }
  if (!subject.custom) throw new Error(`${subject.label}: nothing to run`);
  const { prepare, run } = await subject.custom(round);
  const prepared = await prepare();
  const before = cpuMicros(server.pid);
  const r = await run(prepared);
  const cpu = cpuMicros(server.pid) - before;
  return { requests: r.requests, seconds: r.seconds, cpuUs: cpu, errors: r.bad, p99Ms: r.p99Ms, ...(r.sample ? { sample: r.sample } : {}) };
}

const perRequest = (r: Round) => r.cpuUs / Math.max(1, r.requests);
const rate = (r: Round) => r.requests / r.seconds;

async function measureAll(subjects: Subject[]): Promise<Measured[]> {
  const results = new Map<Subject, Measured>(subjects.map((s) => [s, { subject: s, rounds: [] }]));
  log(`warm-up (${settings.warmSeconds}s each)`);
  for (const subject of subjects) {
    if (subject.target) await measureOnce(subject, settings.warmSeconds, -1);
  }
  for (let round = 0; round < settings.rounds; round++) {
    // Interleave: every subject once per round; alternate ours/floor order between rounds.
    const order = round % 2 === 0 ? subjects : [...subjects].reverse();
    for (const subject of order) {
      const r = await measureOnce(subject, settings.seconds, round);
      results.get(subject)!.rounds.push(r);
      log(
        `round ${round + 1}/${settings.rounds} ${subject.scenario} ${subject.label}: ${perRequest(r).toFixed(0)} CPU-µs/req, ${rate(r).toFixed(0)} req/s, errors ${r.errors}${r.sample ? ` (${r.sample})` : ''}`,
      );
    }
  }
  // Latency open loop at 50% of the median saturated rate.
  for (const subject of subjects) {
    const m = results.get(subject)!;
    const target = 0.5 * median(m.rounds.map(rate));
    if (!(target > 0) || subject.noOpenLoop) continue;
    let next: ((i: number) => Target) | undefined;
    let seconds = settings.openSeconds;
    if (subject.target) {
      const t = await subject.target();
      next = () => t;
    } else if (subject.openLoop) {
      const prepared = await subject.openLoop(Math.ceil(target * settings.openSeconds));
      next = prepared.next;
      seconds = Math.min(seconds, prepared.count / target);
    }
    if (!next) continue;
    const open = await runOpenLoop(next, { rate: target, seconds });
    m.open = { ...open, rate: target };
    log(
      `open loop ${subject.scenario} ${subject.label} @ ${target.toFixed(0)}/s (achieved ${open.achievedRate?.toFixed(0) ?? '?'}): p50 ${open.p50Ms.toFixed(2)} ms, p99 ${open.p99Ms.toFixed(2)} ms, errors ${open.bad}${open.sample ? ` (${open.sample})` : ''}`,
    );
  }
  return [...results.values()];
}

// ---------------------------------------------------------------------------------------------
// Servers

const cleanup: (() => Promise<void>)[] = [];
async function shutdown(): Promise<void> {
  for (const step of cleanup.reverse()) {
    try {
      await step();
    } catch (error) {
      log(`cleanup: ${String(error)}`);
    }
  }
}
process.on('SIGINT', () => {
  void shutdown().then(() => process.exit(130));
});

async function main(): Promise<void> {
  log(`machine: ${machine.nproc} cores, ${machine.cpu}, Node ${machine.node}; ${quick ? 'QUICK smoke run' : 'full run'}`);
  const nodeFlags = [
    ...(args['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', outDir] : []),
    ...(args['node-flags']?.split(' ').filter(Boolean) ?? []),
  ];

  // Portcullis: database, seed, servers.
  const ours: Portcullis = await preparePortcullis();
  cleanup.push(() => ours.close());
  cleanup.push(() => deleteRedisPrefix(ours.redisPrefix));
  const { auth, api } = await ours.start({ cpu: SERVER_CPU, nodeFlags });
  cleanup.push(() => api.stop());
  cleanup.push(() => auth.stop());
  log(`portcullis auth pid ${auth.pid} ${auth.origin}, api pid ${api.pid} ${api.origin}`);

  // The same private JWKS for the bare provider (file 0600, removed at the end).
  const jwksFile = `${outDir}/jwks-${process.pid}.json`;
  writeFileSync(jwksFile, JSON.stringify(await ours.deps.keys.privateJwks()), { mode: 0o600 });
  chmodSync(jwksFile, 0o600);
  cleanup.push(() => {
    rmSync(jwksFile, { force: true });
    return Promise.resolve();
  });

  const floorClients = {
    cc: { client_id: 'bench-cc', client_secret: 'bench-cc-secret-0123456789abcdef0123456789' },
    web: { client_id: 'bench-web', client_secret: 'bench-web-secret-0123456789abcdef012345678' },
    device: { client_id: 'bench-device' },
  };
  const clientsJson = JSON.stringify([
    { ...floorClients.cc, grant_types: ['client_credentials'], response_types: [], redirect_uris: [] },
    { ...floorClients.web, grant_types: ['authorization_code', 'refresh_token'], redirect_uris: [REDIRECT_URI] },
    {
      ...floorClients.device,
      token_endpoint_auth_method: 'none',
      grant_types: [DEVICE_GRANT, 'refresh_token'],
      response_types: [],
      redirect_uris: [],
    },
  ]);
  const floorPrefix = `bench:${process.pid}:floor:`;
  cleanup.push(() => deleteRedisPrefix(floorPrefix));
  const startFloor = async (name: string, script: string, env: Record<string, string>, readyPath = '/'): Promise<Server> => {
    const port = await freePort();
    const server = await startServer({
      name,
      args: [script],
      env: { PORT: String(port), ...env },
      origin: `http://127.0.0.1:${port}`,
      readyPath,
      cpu: SERVER_CPU,
      nodeFlags,
    });
    cleanup.push(() => server.stop());
    log(`${name} pid ${server.pid} ${server.origin}`);
    return server;
  };
  const floorEnv = {
    BENCH_JWKS_FILE: jwksFile,
    BENCH_CLIENTS: clientsJson,
    BENCH_API_URL: ours.apiUrl,
    REDIS_URL,
    REDIS_KEY_PREFIX: floorPrefix,
  };
  const oidcMemory = await startFloor(
    'oidc-provider (memory)',
    'bench/floors/oidc-bare.ts',
    { ...floorEnv, BENCH_STORAGE: 'memory' },
    '/.well-known/openid-configuration',
  );
  const oidcRedis = await startFloor(
    'oidc-provider (redis)',
    'bench/floors/oidc-bare.ts',
    { ...floorEnv, BENCH_STORAGE: 'redis' },
    '/.well-known/openid-configuration',
  );
  const hello = await startFloor('node:http hello', 'bench/floors/hello.ts', {});
  // Scenario 4 floor: a local ES256 key and a token shaped like ours.
  const floorKeys = await generateKeyPair('ES256', { extractable: true });
  const koa = await startFloor(
    'koa + jwtVerify',
    'bench/floors/koa-jwt.ts',
    {
      BENCH_PUBLIC_JWK: JSON.stringify(await exportJWK(floorKeys.publicKey)),
      BENCH_ISSUER: ours.issuer,
      BENCH_AUDIENCE: ours.apiUrl,
    },
    '/healthz',
  );

  const providers = [
    { label: 'Portcullis', role: 'ours' as const, server: auth, cc: ours.seed.cc, web: ours.seed.web, device: ours.seed.device },
    { label: 'bare oidc-provider, memory', role: 'floor' as const, server: oidcMemory, ...floorClients },
    { label: 'bare oidc-provider, our Redis adapter', role: 'floor' as const, server: oidcRedis, ...floorClients },
  ];

  const subjects: Subject[] = [];

  // Its open loop (~16,000/s) swamped the driver: the runner's heap grew to ~280 MiB and its 25–47 ms
  // scavenges landed in the next subject's open loop, scenario 1's p99 (issue 8).
  subjects.push({
    scenario: '0',
    label: 'node:http hello world',
    role: 'floor',
    noOpenLoop: true,
    server: () => hello,
    target: () => ({ origin: hello.origin, method: 'GET', path: '/', expect: [200] }),
  });

  // 1. client_credentials → ES256 JWT for the API.
  if (wanted('1')) {
    for (const p of providers) {
      const { headers, body } = form({ grant_type: 'client_credentials', resource: ours.apiUrl, scope: 'records:read' });
      const target: Target = {
        origin: p.server.origin,
        method: 'POST',
        path: '/token',
        headers: { ...headers, Authorization: basicAuth(p.cc.client_id, p.cc.client_secret) },
        body,
        expect: [200],
        match: ['"access_token"'],
      };
      const probe = await tokenRequest(
        p.server.origin,
        { grant_type: 'client_credentials', resource: ours.apiUrl, scope: 'records:read' },
        p.cc,
      );
      if (decodeProtectedHeader(probe.access_token).alg !== 'ES256') throw new Error(`${p.label}: access token is not ES256`);
      subjects.push({ scenario: '1', label: p.label, role: p.role, server: () => p.server, target: () => target });
    }
  }

  // 2. Refresh with rotation: a pool of one-use refresh tokens per round (minting not measured).
  if (wanted('2')) {
    for (const p of providers) {
      const isOurs = p.role === 'ours';
      const mint = (count: number) =>
        mintRefreshTokens({
          issuer: p.server.origin,
          client: p.web,
          redirectUri: REDIRECT_URI,
          email: isOurs ? ours.seed.user.email : 'bench@example.test',
          password: isOurs ? ours.seed.user.password : 'unused',
          count,
        });
      const refreshTarget = (token: string): Target => {
        const { headers, body } = form({ grant_type: 'refresh_token', refresh_token: token });
        return {
          origin: p.server.origin,
          method: 'POST',
          path: '/token',
          headers: { ...headers, Authorization: basicAuth(p.web.client_id, p.web.client_secret) },
          body,
          expect: [200],
          match: ['"refresh_token"'],
        };
      };
      subjects.push({
        scenario: '2',
        label: p.label,
        role: p.role,
        server: () => p.server,
        custom: () =>
          Promise.resolve({
            prepare: () => mint(settings.refreshPool),
            run: (tokens) => runList((tokens as string[]).map(refreshTarget), 8),
          }),
        openLoop: async (count) => {
          // One use each: a capped pool shortens the open-loop run rather than replaying tokens.
          const tokens = await mint(Math.min(count, settings.refreshPool * 2));
          return { next: (i) => refreshTarget(tokens[i]!), count: tokens.length };
        },
      });
    }
  }

  // 3. Introspection of an (opaque) client-credentials access token by the client that holds it.
  // The memory adapter is an LRU of 1000 entries: a token may be evicted by other scenarios, so
  // each measurement checks its token first and takes a new one when it is no longer active.
  if (wanted('3')) {
    for (const p of providers) {
      let token = '';
      const introspect = (t: string): Target => {
        const { headers, body } = form({ token: t });
        return {
          origin: p.server.origin,
          method: 'POST',
          path: '/token/introspection',
          headers: { ...headers, Authorization: basicAuth(p.cc.client_id, p.cc.client_secret) },
          body,
          expect: [200],
          match: ['"active":true'],
        };
      };
      const target = async (): Promise<Target> => {
        if (token && (await stillAccepted(introspect(token)))) return introspect(token);
        token = (await tokenRequest(p.server.origin, { grant_type: 'client_credentials' }, p.cc)).access_token;
        return introspect(token);
      };
      subjects.push({ scenario: '3', label: p.label, role: p.role, server: () => p.server, target });
    }
  }

  // 4. Resource API with a user's JWT; the floor is Koa + jwtVerify; rejections against acceptance.
  if (wanted('4')) {
    const browser = new Browserless(ours.issuer);
    const tokens = await codeFlow({
      issuer: ours.issuer,
      client: ours.seed.web,
      redirectUri: REDIRECT_URI,
      browser,
      email: ours.seed.user.email,
      password: ours.seed.user.password,
      scope: 'openid records:read records:write',
      resource: ours.apiUrl,
    });
    const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });
    const created = await fetch(`${ours.apiUrl}/v1/records`, {
      method: 'POST',
      headers: { ...bearer(tokens.access_token), 'Content-Type': 'application/json' },
      body: JSON.stringify({ type: 'note', label: 'bench', data: { text: 'a record of moderate size for the benchmark '.repeat(8) } }),
    });
    const record = (await created.json()) as { id?: string };
    if (!record.id) throw new Error(`could not create a record: ${created.status} ${JSON.stringify(record)}`);
    // Tokens signed with our own ES256 key: expired, and without the records scope.
    const jwks = await ours.deps.keys.privateJwks();
    const header = decodeProtectedHeader(tokens.access_token);
    const jwk = jwks.keys.find((k) => k.kid === header.kid) as JWK;
    const key = await importJWK(jwk, 'ES256');
    const claims = decodeJwt(tokens.access_token);
    const now = Math.floor(Date.now() / 1000);
    const sign = (payload: Record<string, unknown>) =>
      new SignJWT(payload).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: header.kid ?? '' }).sign(key);
    const expired = await sign({ ...claims, iat: now - 7200, exp: now - 3600 });
    const noScope = await sign({ ...claims, scope: 'openid', exp: now + 3600 * 24 });
    const badSig = `${tokens.access_token.slice(0, -6)}${tokens.access_token.slice(-6).split('').reverse().join('')}`;
    // The access token lives ACCESS_TOKEN_TTL (600 s): re-sign an identical one valid for the run.
    const valid = await sign({ ...claims, exp: now + 3600 * 24 });
    const get = (path: string, token: string, expect: number[]): Target => ({
      origin: ours.apiUrl,
      method: 'GET',
      path,
      headers: bearer(token),
      expect,
    });
    subjects.push({ scenario: '4', label: 'GET /v1/me', role: 'ours', server: () => api, target: () => get('/v1/me', valid, [200]) });
    subjects.push({
      scenario: '4',
      label: 'GET /v1/records/{id} (decrypt)',
      role: 'ours',
      server: () => api,
      target: () => get(`/v1/records/${record.id!}`, valid, [200]),
    });
    subjects.push({
      scenario: '4r',
      label: 'GET /v1/me, bad signature',
      role: 'ours',
      server: () => api,
      target: () => get('/v1/me', badSig, [401]),
    });
    subjects.push({
      scenario: '4r',
      label: 'GET /v1/me, expired',
      role: 'ours',
      server: () => api,
      target: () => get('/v1/me', expired, [401]),
    });
    subjects.push({
      scenario: '4r',
      label: 'GET /v1/records/{id}, missing scope',
      role: 'ours',
      server: () => api,
      target: () => get(`/v1/records/${record.id!}`, noScope, [403]),
    });
    const floorToken = await new SignJWT({ ...claims, exp: now + 3600 * 24 })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt' })
      .sign(floorKeys.privateKey);
    subjects.push({
      scenario: '4',
      label: 'Koa + jose.jwtVerify',
      role: 'floor',
      server: () => koa,
      target: () => ({ origin: koa.origin, method: 'GET', path: '/v1/me', headers: bearer(floorToken), expect: [200] }),
    });
  }

  // 5. Full login: authorize → login form with password → consent → code → token (fresh browser each).
  if (wanted('5')) {
    for (const p of providers) {
      const isOurs = p.role === 'ours';
      const login = () =>
        codeFlow({
          issuer: p.server.origin,
          client: p.web,
          redirectUri: REDIRECT_URI,
          browser: new Browserless(p.server.origin),
          email: isOurs ? ours.seed.user.email : 'bench@example.test',
          password: isOurs ? ours.seed.user.password : 'unused',
          scope: 'openid records:read',
          resource: ours.apiUrl,
        });
      subjects.push({
        scenario: '5',
        label: p.label,
        role: p.role,
        server: () => p.server,
        custom: () =>
          Promise.resolve({
            prepare: () => Promise.resolve(undefined),
            run: async () => {
              const started = performance.now();
              const latencies: number[] = [];
              let bad = 0;
              let sample: string | undefined;
              await pool(settings.logins, 4, async () => {
                const t0 = performance.now();
                try {
                  await login();
                } catch (error) {
                  bad++;
                  sample ??= String(error).slice(0, 200);
                }
                latencies.push(performance.now() - t0);
              });
              latencies.sort((a, b) => a - b);
              return {
                requests: settings.logins,
                seconds: (performance.now() - started) / 1000,
                good: settings.logins - bad,
                bad,
                p50Ms: median(latencies),
                p99Ms: latencies[Math.ceil(latencies.length * 0.99) - 1] ?? Number.NaN,
                ...(sample ? { sample } : {}),
              };
            },
          }),
      });
    }
  }

  // 6. Device flow poll while pending (slow_down after the first poll). A fresh device code
  // when the last one is no longer pending (expired after 600 s, or evicted from the memory LRU).
  if (wanted('6')) {
    for (const p of providers) {
      let code = '';
      const poll = (c: string): Target => {
        const { headers, body } = form({ grant_type: DEVICE_GRANT, device_code: c, client_id: p.device.client_id });
        return {
          origin: p.server.origin,
          method: 'POST',
          path: '/token',
          headers,
          body,
          expect: [400],
          match: ['authorization_pending', 'slow_down'],
        };
      };
      const target = async (): Promise<Target> => {
        if (code && (await stillAccepted(poll(code)))) return poll(code);
        code = await deviceCode(p.server.origin, p.device.client_id);
        return poll(code);
      };
      subjects.push({ scenario: '6', label: p.label, role: p.role, server: () => p.server, target });
    }
  }

  // 7. Discovery and JWKS, unconditional and (when the server sends an ETag) conditional.
  if (wanted('7')) {
    for (const p of providers.slice(0, 2)) {
      for (const path of ['/.well-known/openid-configuration', '/jwks']) {
        const probe = await fetch(`${p.server.origin}${path}`);
        await probe.arrayBuffer();
        const etag = probe.headers.get('etag');
        cacheHeaders.push({ label: p.label, path, cacheControl: probe.headers.get('cache-control'), etag });
        subjects.push({
          scenario: '7',
          label: `${p.label} ${path}`,
          role: p.role,
          server: () => p.server,
          target: () => ({ origin: p.server.origin, method: 'GET', path, expect: [200] }),
        });
        if (etag) {
          subjects.push({
            scenario: '7',
            label: `${p.label} ${path} (If-None-Match)`,
            role: p.role,
            server: () => p.server,
            target: () => ({ origin: p.server.origin, method: 'GET', path, headers: { 'If-None-Match': etag }, expect: [304] }),
          });
        }
      }
    }
  }

  const rssBefore = { auth: rssBytes(auth.pid), api: rssBytes(api.pid) };
  const pick = args.subjects === undefined ? undefined : new RegExp(args.subjects);
  const measured = await measureAll(pick ? subjects.filter((s) => pick.test(s.label)) : subjects);
  const rssAfter = { auth: rssBytes(auth.pid), api: rssBytes(api.pid) };

  // Argon2 floor: our parameters, all cores (not pinned).
  let argon: ArgonFloor | undefined;
  if (wanted('5')) argon = await argonFloor();
  // JWT signing cost per algorithm (why access tokens are ES256), on the server core.
  const signing = JSON.parse(await runFloorScript('bench/floors/signing.ts', SERVER_CPU)) as SigningFloor;

  // Memory and growth with stored state.
  let memory: MemoryReport | undefined;
  if (wanted('mem') || !only) {
    memory = await measureMemory({
      redisUrl: REDIS_URL,
      oursPrefix: ours.redisPrefix,
      floorPrefix,
      grants: settings.grants,
      growthLevels: settings.growthLevels,
      log,
      authPid: auth.pid,
      oidcStateRoot: await loadServerSecret(ours.deps.knex, ours.deps.box, SERVER_SECRETS.oidcState),
      remeasure: async () => {
        const s = subjects.filter((x) => x.role === 'ours' && (x.scenario === '1' || x.scenario === '3'));
        const out: { scenario: string; cpuUs: number; rps: number; p99Ms: number; errors: number }[] = [];
        for (const subject of s) {
          const r = await measureOnce(subject, settings.seconds, 0);
          out.push({ scenario: subject.scenario, cpuUs: perRequest(r), rps: rate(r), p99Ms: r.p99Ms, errors: r.errors });
        }
        return out;
      },
    });
  }

  const rows: Row[] = measured.map((m) => ({
    scenario: m.subject.scenario,
    label: m.subject.label,
    role: m.subject.role,
    cpuUs: median(m.rounds.map(perRequest)),
    rps: median(m.rounds.map(rate)),
    errors: m.rounds.reduce((n, r) => n + r.errors, 0) + (m.open?.bad ?? 0),
    p99SaturatedMs: median(m.rounds.map((r) => r.p99Ms)),
    ...(m.open
      ? { open: { rate: m.open.rate, achieved: m.open.achievedRate ?? m.open.rate, p50Ms: m.open.p50Ms, p99Ms: m.open.p99Ms } }
      : {}),
  }));
  const markdown = renderReport({
    machine,
    quick,
    settings,
    rows,
    argon,
    signing,
    memory,
    cacheHeaders,
    rss: { before: rssBefore, after: rssAfter },
    cpuProf: args['cpu-prof'],
  });
  process.stdout.write(`\n${markdown}\n`);
  writeFileSync(`${repoRoot}bench/results.md`, markdown);
  log('wrote bench/results.md');
  // Only a complete full run goes into the README (between its bench markers).
  if (!quick && !only && args.rounds === undefined) {
    const readmePath = `${repoRoot}README.md`;
    const updated = withBenchSection(readFileSync(readmePath, 'utf8'), markdown);
    if (updated) {
      writeFileSync(readmePath, updated);
      log('updated the Benchmarks section of README.md');
    }
  }
}

/** Sends a target once and says whether the answer would count as a success. */
async function stillAccepted(target: Target): Promise<boolean> {
  const response = await fetch(`${target.origin}${target.path}`, {
    method: target.method,
    headers: target.headers ?? {},
    ...(target.body ? { body: target.body } : {}),
  });
  return accepts(target, response.status, await response.text());
}

const cacheHeaders: { label: string; path: string; cacheControl: string | null; etag: string | null }[] = [];

export type ArgonFloor = {
  memoryCost: number;
  timeCost: number;
  parallelism: number;
  cores: number;
  cpuUsPerVerify: number;
  verifiesPerSecond: number;
};

export type SigningFloor = Record<string, { signUs: number; verifyUs: number }>;

/** Runs a floor script to completion pinned to `cpus`; returns its stdout. */
function runFloorScript(script: string, cpus: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('taskset', ['-c', cpus, process.execPath, script], {
      cwd: repoRoot,
      env: { ...process.env, BENCH_SECONDS: String(quick ? 2 : 10) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`${script} failed (${String(code)})`));
      else resolve(out);
    });
  });
}

async function argonFloor(): Promise<ArgonFloor> {
  return JSON.parse(await runFloorScript('bench/floors/argon2.ts', `0-${machine.nproc - 1}`)) as ArgonFloor;
}

async function deleteRedisPrefix(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

main()
  .then(shutdown)
  .then(() => process.exit(0))
  .catch(async (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    await shutdown();
    process.exit(1);
  });
