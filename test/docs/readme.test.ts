import { readFile } from 'node:fs/promises';
import { expect } from 'chai';
import { renderMarkdown } from '../../scripts/env-example.ts';

/** The README's configuration table is generated from config/schema.json; this keeps it true. */
describe('README', function () {
  it('shows the configuration table as generated from the schema', async function () {
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
    const table = /<!-- config-table:start -->\n([\s\S]*?)\n<!-- config-table:end -->/.exec(readme)?.[1];
    expect(table, 'README lost its config-table markers').to.be.a('string');
    expect(table!.trim()).to.equal(renderMarkdown().trim());
  });
});
