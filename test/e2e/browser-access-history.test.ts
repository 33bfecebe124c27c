import { expect } from 'chai';
import { goto, passwordStep, useChromium, screenPath } from '../helpers/browser.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';

/** S11: the owner's access history on the account page, in Chromium, kept as a screenshot. */
describe('browser: the access history on the account page (Chromium)', function () {
  this.timeout(60_000);
  const chromium = useChromium();
  let servers: TestServers;

  before(async function () {
    servers = await startTestServers({ issuerHost: 'localhost' });
  });
  after(async function () {
    await servers.stop();
  });

  it('S11 shows who read which shared record, when and through which app', async function () {
    const app = await createTestClient(servers.deps, { client_name: 'Acme Health' });
    const owner = await createTestUser(servers.deps, { name: 'Ada Owner' });
    const reader = await createTestUser(servers.deps, { name: 'Rick Reader' });
    const { records } = servers.deps.api;
    const lab = await records.create({ userId: owner.id }, { type: 'medical', label: 'Lab results', data: {} });
    const scan = await records.create({ userId: owner.id }, { type: 'document', label: 'Passport scan', data: {} });
    for (const record of [lab, scan]) {
      await records.share({ userId: owner.id }, record.id, reader.id);
      await records.acceptOffer({ userId: reader.id }, record.id);
    }
    const readerActor = { userId: reader.id, clientId: app.client_id, ip: '198.51.100.7' };
    await records.get(readerActor, lab.id);
    await records.list(readerActor, { limit: 10 });

    const { page } = await chromium.open();
    await goto(page, `${servers.issuer}/account`);
    await passwordStep(page, owner.email, owner.password);
    const heading = page.getByRole('heading', { name: 'Who read your shared records' });
    await heading.waitFor();
    const section = page.locator('section[aria-labelledby="h-access"]');
    const entries = section.locator('li');
    expect(await entries.count()).to.equal(2);
    expect(await entries.nth(0).innerText()).to.match(new RegExp(`Account ${reader.id} read 2 of your records in a list`));
    expect(await entries.nth(1).innerText())
      .to.include(`read your medical record: ${lab.id}`)
      .and.include('through Acme Health');
    expect(await section.innerText()).to.not.include('198.51.100.7');
    await section.screenshot({ path: await screenPath('11-account-access-history') });
    await section.screenshot({ path: '/tmp/c-access-history.png' });
    await page.screenshot({ path: '/tmp/c-account-page.png', fullPage: true });
  });
});
