import { spawn } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { Browserless, formOf } from '../helpers/browserless.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';

type Run = { code: number | null; stdout: string; stderr: string };

/** examples/device-cli.ts as a user runs it: login (device flow), me (refresh + API), logout. */
describe('examples/device-cli.ts', function () {
  let servers: TestServers;
  let configHome: string;
  let env: NodeJS.ProcessEnv;
  let user: Awaited<ReturnType<typeof createTestUser>>;

  before(async function () {
    servers = await startTestServers();
    user = await createTestUser(servers.deps);
    const cli = await createTestClient(servers.deps, {
      client_name: 'Portcullis CLI',
      token_endpoint_auth_method: 'none',
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
      redirect_uris: [],
      post_logout_redirect_uris: [],
      scope: 'openid offline_access records:read',
    });
    configHome = await mkdtemp(join(tmpdir(), 'portcullis-cli-'));
    env = {
      ...process.env,
      XDG_CONFIG_HOME: configHome,
      PORTCULLIS_ISSUER: servers.issuer,
      PORTCULLIS_CLIENT_ID: cli.client_id,
      PORTCULLIS_API_URL: servers.apiUrl,
    };
  });

  after(async function () {
    await servers.stop();
    await rm(configHome, { recursive: true, force: true });
  });

  /** Runs the example; onStderr sees its output as it comes (the login prompt). */
  function runCli(args: string[], onStderr?: (text: string) => void): Promise<Run> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['examples/device-cli.ts', ...args], { env });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        onStderr?.(stderr);
      });
      child.on('error', reject);
      child.on('close', (code) => {
        resolve({ code, stdout, stderr });
      });
    });
  }

  async function approve(verificationUri: string): Promise<void> {
    const browser = new Browserless(servers.issuer);
    const { response } = await browser.follow(verificationUri);
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(await response.text())?.[1] ?? '';
    const code = new URL(verificationUri).searchParams.get('user_code') ?? '';
    const { response: confirmPage } = await browser.submit('/device', { xsrf, user_code: code });
    const confirm = await confirmPage.text();
    const allow = /<form[^>]*action="([^"]+)"[^>]*>((?:(?!<\/form>)[\s\S])*?name="confirm"[\s\S]*?)<\/form>/.exec(confirm);
    const fields = Object.fromEntries(
      [...(allow?.[2] ?? '').matchAll(/name="([^"]+)" value="([^"]*)"/g)].map((m) => [m[1] ?? '', m[2] ?? '']),
    );
    let { response: page, url } = await browser.submit(allow?.[1] ?? '/device', fields);
    for (let steps = 0; steps < 4 && url.pathname.startsWith('/interaction/'); steps++) {
      const html = await page.text();
      if (html.includes('name="password"')) {
        const form = formOf(html, '/login');
        ({ response: page, url } = await browser.submit(form.action, { csrf: form.csrf, email: user.email, password: user.password }));
      } else {
        const form = formOf(html, '/confirm');
        ({ response: page, url } = await browser.submit(form.action, { csrf: form.csrf }));
      }
    }
    expect(await page.text()).to.include('Device connected');
  }

  it('logs in with the device flow, keeps the refresh token 0600, calls /v1/me, refreshes and logs out', async function () {
    this.timeout(60_000);
    let approving: Promise<void> | undefined;
    const login = await runCli(['login'], (text) => {
      const uri = /or open (\S+)/.exec(text)?.[1];
      if (uri && !approving) approving = approve(uri);
    });
    await approving;
    expect(login.code, login.stderr).to.equal(0);
    expect(JSON.parse(login.stdout)).to.deep.include({ sub: user.id, scope: 'records:read' });

    const file = join(configHome, 'portcullis', 'credentials.json');
    expect((await stat(file)).mode & 0o777).to.equal(0o600);
    expect((await stat(join(configHome, 'portcullis'))).mode & 0o777).to.equal(0o700);

    const me = await runCli(['me']);
    expect(me.code, me.stderr).to.equal(0);
    expect(JSON.parse(me.stdout)).to.deep.include({ sub: user.id });
    expect((await stat(file)).mode & 0o777).to.equal(0o600);

    const logout = await runCli(['logout']);
    expect(logout.code, logout.stderr).to.equal(0);
    const after = await runCli(['me']);
    expect(after.code).to.equal(1);
    expect(after.stderr).to.include('not signed in');
  });
});
