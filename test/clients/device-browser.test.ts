import { expect } from 'chai';
import * as client from 'openid-client';
import { useChromium } from '../helpers/browser.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';

/**
 * The device flow's pages in real Chromium, found the way a person (or a screen reader) finds
 * them: the input by its label "Code", the buttons by their names. The CSP stays strict (no
 * inline script is needed anywhere on these pages).
 */
describe('device flow pages in Chromium', function () {
  this.timeout(60_000);
  const chromium = useChromium();
  let servers: TestServers;
  let rp: client.Configuration;
  let user: Awaited<ReturnType<typeof createTestUser>>;

  before(async function () {
    servers = await startTestServers();
    user = await createTestUser(servers.deps);
    const registered = await createTestClient(servers.deps, {
      client_name: 'Smart TV',
      token_endpoint_auth_method: 'none',
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
      redirect_uris: [],
      post_logout_redirect_uris: [],
      scope: 'openid offline_access records:read',
    });
    rp = await client.discovery(new URL(servers.issuer), registered.client_id, undefined, client.None(), {
      execute: [client.allowInsecureRequests],
    });
  });

  after(async function () {
    await servers.stop();
  });

  it('enter the code by its label, Allow, sign in, done; the device gets tokens', async function () {
    const device = await client.initiateDeviceAuthorization(rp, { scope: 'openid offline_access records:read', resource: servers.apiUrl });
    const { page } = await chromium.open();
    // No CSP violations or broken resources (the browser's own favicon probe aside).
    const errors: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error' && !message.text().includes('404')) errors.push(message.text());
    });
    page.on('response', (response) => {
      if (response.status() >= 400 && !response.url().endsWith('/favicon.ico'))
        errors.push(`${String(response.status())} ${response.url()}`);
    });

    await page.goto(device.verification_uri);
    await page.getByLabel('Code').fill(device.user_code.replace('-', ' ').toLowerCase());
    await page.getByRole('button', { name: 'Continue' }).click();

    await page.getByRole('heading', { name: 'Connect this device?' }).waitFor();
    const confirm = await page.content();
    expect(confirm).to.include('Smart TV');
    expect(confirm).to.include(device.user_code);
    await page.getByRole('button', { name: 'Allow' }).click();

    await page.getByLabel('Email').fill(user.email);
    await page.getByLabel('Password').fill(user.password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('heading', { name: 'Device connected' }).waitFor();
    expect(errors, errors.join('\n')).to.deep.equal([]);

    const tokens = await client.pollDeviceAuthorizationGrant(rp, { ...device, interval: 0.01 }, { resource: servers.apiUrl });
    expect(tokens.refresh_token).to.be.a('string');
  });

  it('verification_uri_complete arrives pre-filled; "I didn\'t start this" blocks the request', async function () {
    const device = await client.initiateDeviceAuthorization(rp, { scope: 'openid' });
    const { page } = await chromium.open();
    await page.goto(device.verification_uri_complete!);
    expect(await page.getByLabel('Code').inputValue()).to.equal(device.user_code);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('button', { name: "I didn't start this" }).click();
    await page.getByRole('heading', { name: 'Request blocked and reported' }).waitFor();
  });
});
