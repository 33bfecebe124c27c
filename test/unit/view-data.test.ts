import { readdirSync } from 'node:fs';
import { expect } from 'chai';
import { renderView, type ViewData, type ViewName } from '../../src/auth/views.ts';

/** Templates included by pages, never rendered on their own. */
const PARTIALS = new Set(['layout', 'scope-list', 'totp-setup']);

/** Every page named once, so the typed list and the files cannot drift apart. */
const VIEWS: Record<ViewName, true> = {
  login: true,
  consent: true,
  logout: true,
  'logged-out': true,
  error: true,
  'device-code': true,
  'device-confirm': true,
  'device-done': true,
  mfa: true,
  'mfa-enroll': true,
  'mfa-recovery-codes': true,
  account: true,
  'account-totp': true,
  'sign-up': true,
  'email-code': true,
};

describe('typed page data (src/auth/view-data.ts)', function () {
  it('names exactly the page templates in views/', function () {
    const pages = readdirSync(new URL('../../views/', import.meta.url))
      .filter((f) => f.endsWith('.eta'))
      .map((f) => f.slice(0, -'.eta'.length))
      .filter((name) => !PARTIALS.has(name));
    expect(Object.keys(VIEWS).sort()).to.deep.equal(pages.sort());
  });

  it('refuses a misspelled or missing field at typecheck time, and renders a well-typed page', function () {
    const data: ViewData['device-done'] = { heading: 'Device connected', message: 'You can close this page.' };
    // @ts-expect-error -- "mesage" is not a field of the device-done page (npm run typecheck fails if this compiles)
    const misspelled: ViewData['device-done'] = { heading: 'x', mesage: 'y' };
    expect(misspelled).to.have.property('mesage');
    const html = renderView('device-done', data);
    expect(html).to.include('Device connected').and.include('You can close this page.');
  });
});
