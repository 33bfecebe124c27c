import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { ESLint } from 'eslint';

const root = fileURLToPath(new URL('../..', import.meta.url));
const RULE = 'import-x/no-restricted-paths';

/**
 * The layering rule of eslint.config.js (issue 18): imports flow routes/CLI → services → store →
 * shared/config. Each case lints one line of source as if it were a file at `filePath` (it need
 * not exist: only the import is resolved, against the real tree) with the project's own
 * configuration, running that rule alone so no type information is needed.
 */
async function layeringErrors(filePath: string, source: string): Promise<string[]> {
  const eslint = new ESLint({
    cwd: root,
    ruleFilter: ({ ruleId }) => ruleId === RULE,
    overrideConfig: { languageOptions: { parserOptions: { projectService: false } } },
  });
  const [result] = await eslint.lintText(source, { filePath: `${root}/${filePath}` });
  return (result?.messages ?? []).map((m) => `${m.ruleId ?? 'parse'}: ${m.message}`);
}

describe('issue 18 the layering rule runs in lint', function () {
  this.timeout(60_000);

  it('fails on a deliberate wrong-way import: shared code importing the store', async function () {
    const errors = await layeringErrors(
      'src/shared/wrong-way.ts',
      "import { createDatabase } from '../store/db.ts';\nexport const x = createDatabase;\n",
    );
    expect(errors).to.have.length(1);
    expect(errors[0]).to.match(/^import-x\/no-restricted-paths: Unexpected path "\.\.\/store\/db\.ts"/);
  });

  it('fails on a type-only import from a higher layer: the store importing a service', async function () {
    const errors = await layeringErrors(
      'src/store/wrong-way.ts',
      "import type { AuditService } from '../services/audit.ts';\nexport type X = AuditService;\n",
    );
    expect(errors).to.have.length(1);
    expect(errors[0]).to.contain(RULE);
  });

  it('fails on a route or CLI command reaching the store past the services', async function () {
    const route = await layeringErrors(
      'src/api/routes/wrong-way.ts',
      "import type { RecordType } from '../../store/records.ts';\nexport type X = RecordType;\n",
    );
    const command = await layeringErrors(
      'src/cli/wrong-way.ts',
      "import { createDatabase } from '../store/db.ts';\nexport const x = createDatabase;\n",
    );
    expect(route).to.have.length(1);
    expect(command).to.have.length(1);
  });

  it('holds for the account page too: it has no exemption left', async function () {
    const page = await layeringErrors(
      'src/auth/routes/account.ts',
      "import type { AccountIndexStore } from '../../store/account-index.ts';\nexport type X = AccountIndexStore;\n",
    );
    expect(page).to.have.length(1);
  });

  it('lets imports flow the right way, and the composition root import every layer', async function () {
    expect(
      await layeringErrors(
        'src/services/right-way.ts',
        "import { createDatabase } from '../store/db.ts';\nexport const x = createDatabase;\n",
      ),
    ).to.deep.equal([]);
    expect(
      await layeringErrors(
        'src/api/routes/right-way.ts',
        "import type { RecordType } from '../../services/records.ts';\nexport type X = RecordType;\n",
      ),
    ).to.deep.equal([]);
    expect(
      await layeringErrors('src/deps.ts', "import { createDatabase } from './store/db.ts';\nexport const x = createDatabase;\n"),
    ).to.deep.equal([]);
  });
});
