import { readFile } from 'node:fs/promises';
import { expect } from 'chai';
import { renderMarkdown, withConfigTable } from '../../scripts/env-example.ts';

/** The README's configuration table is generated from config/schema.json; this keeps it true. */
describe('README', function () {
  it('shows the configuration table as generated from the schema', async function () {
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
    const table = /<!-- config-table:start -->\n([\s\S]*?)\n<!-- config-table:end -->/.exec(readme)?.[1];
    expect(table, 'README lost its config-table markers').to.be.a('string');
    expect(table!.trim()).to.equal(renderMarkdown().trim());
  });

  it('npm run config:docs rewrites a stale table between the markers and leaves the rest alone', function () {
    const stale =
      'intro\n<!-- config-table:start -->\n| Variable | Default | Description |\n| `OLD` | 1 | gone |\n<!-- config-table:end -->\noutro\n';
    const rewritten = withConfigTable(stale);
    expect(rewritten).to.equal(`intro\n<!-- config-table:start -->\n${renderMarkdown().trim()}\n<!-- config-table:end -->\noutro\n`);
    expect(withConfigTable(rewritten)).to.equal(rewritten);
    expect(() => withConfigTable('no markers here')).to.throw(/markers/);
  });
});
