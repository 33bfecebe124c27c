import { expect } from 'chai';
import { goto, passwordStep, useChromium, screenPath } from '../helpers/browser.ts';
import { createTestUser } from '../helpers/factories.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';

/** R13: the offers waiting for the user on the account page, in Chromium, kept as a screenshot. */
describe('browser: record offers on the account page (Chromium)', function () {
  this.timeout(60_000);
  const chromium = useChromium();
  let servers: TestServers;

  before(async function () {
    servers = await startTestServers({ issuerHost: 'localhost' });
  });
  after(async function () {
    await servers.stop();
  });

  it('R13 lists who offers which kind of record, with labelled accept and decline buttons that work, and the accepted shares', async function () {
    const sharer = await createTestUser(servers.deps, { name: 'Sam Sharer' });
    const recipient = await createTestUser(servers.deps, { name: 'Rita Recipient' });
    const { records } = servers.deps.api;
    const lab = await records.create({ userId: sharer.id }, { type: 'medical', label: 'Lab results', data: {} });
    const scan = await records.create({ userId: sharer.id }, { type: 'document', label: 'Passport scan', data: {} });
    for (const record of [lab, scan]) await records.share({ userId: sharer.id }, record.id, recipient.id);

    const { page } = await chromium.open();
    await goto(page, `${servers.issuer}/account`);
    await passwordStep(page, recipient.email, recipient.password);
    await page.getByRole('heading', { name: 'Records offered to you' }).waitFor();
    const section = page.locator('section[aria-labelledby="h-offers"]');
    const entries = section.locator('li');
    expect(await entries.count()).to.equal(2);
    expect(await entries.nth(0).innerText())
      .to.include(`${sharer.email} offers you a document record`)
      .and.include(scan.id);
    expect(await section.innerText(), 'labels stay sealed').to.not.include('Passport scan');
    await section.screenshot({ path: await screenPath('16-account-share-offers') });

    await section.getByRole('button', { name: `Accept the medical record from ${sharer.email}` }).click();
    await page.getByRole('status').filter({ hasText: 'The record was added to your records.' }).waitFor();
    const received = page.locator('section[aria-labelledby="h-received"]');
    await received.getByRole('button', { name: `Remove the medical record from ${sharer.email}` }).waitFor();
    expect(await received.innerText()).to.include(`${sharer.email} shares a medical record with you`);
    await received.screenshot({ path: await screenPath('16-account-shared-with-you') });
    await section.getByRole('button', { name: `Decline the document record from ${sharer.email}` }).click();
    await page.getByRole('status').filter({ hasText: 'Offer declined.' }).waitFor();
    expect(await section.innerText()).to.include('No records are offered to you.');
    const listed = await records.list({ userId: recipient.id }, { limit: 10 });
    expect(listed.items.map((r) => r.id)).to.deep.equal([lab.id]);
  });
});
