import { join } from 'node:path';
import { expect } from 'chai';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { repoRoot } from '../helpers/process.ts';

/**
 * R12 SAST: `npm run lint` (run by .ci/run) enforces the security rules on the server code,
 * no-unsanitized on the pages' browser scripts, and a reason on every suppression. This lints
 * small probes with the project's own eslint.config.js, so a rule switched off or turned into a
 * warning (which would not fail the run) fails here. The probes are linted without type
 * information: the rules under test need none, and a type-checked program would take seconds.
 */
describe('R12 SAST: the ESLint configuration', function () {
  this.timeout(60_000);
  const serverFile = join(repoRoot, 'src/r12-sast-probe.ts');
  const browserFile = join(repoRoot, 'views/static/r12-sast-probe.js');
  const eslint = new ESLint({
    cwd: repoRoot,
    overrideConfig: [{ files: ['src/r12-sast-probe.ts'], ...tseslint.configs.disableTypeChecked }],
  });

  /** Rule ids of the errors (severity 2) for a probe; warnings do not fail `npm run lint`. */
  async function errors(code: string, filePath: string): Promise<string[]> {
    const [result] = await eslint.lintText(code, { filePath });
    return (result?.messages ?? []).filter((m) => m.severity === 2).map((m) => m.ruleId ?? m.message);
  }

  it('R12 security rules are errors on the server code', async function () {
    const code = [
      "import { readFileSync } from 'node:fs';",
      'export function read(path: string, table: Record<string, string>, key: string): string {',
      '  return readFileSync(path, "utf8") + table[key];',
      '}',
      'export const slow = /^(a+)+$/;',
      '',
    ].join('\n');
    expect(await errors(code, serverFile)).to.include.members([
      'security/detect-non-literal-fs-filename',
      'security/detect-object-injection',
      'security/detect-unsafe-regex',
    ]);
  });

  it('R12 a suppression needs a reason after "--", names its rule, and must silence something', async function () {
    const line = 'export const pick = (table: Record<string, string>, key: string): string | undefined => table[key];';
    expect(await errors(`// eslint-disable-next-line security/detect-object-injection\n${line}\n`, serverFile)).to.include(
      '@eslint-community/eslint-comments/require-description',
    );
    expect(await errors(`/* eslint-disable */\n${line}\n`, serverFile)).to.include(
      '@eslint-community/eslint-comments/no-unlimited-disable',
    );
    // An unused directive is reported by ESLint itself (linterOptions.reportUnusedDisableDirectives).
    const unused = await errors(
      '// eslint-disable-next-line security/detect-object-injection -- nothing here to silence\nexport const x = 1;\n',
      serverFile,
    );
    expect(unused.join()).to.match(/Unused eslint-disable directive/);
    // Described and needed: accepted.
    expect(
      await errors(`// eslint-disable-next-line security/detect-object-injection -- key is a constant of ours\n${line}\n`, serverFile),
    ).to.deep.equal([]);
  });

  it('R12 the browser scripts may not put unsanitized HTML into the page', async function () {
    const code =
      'const box = document.querySelector("#x");\nif (box) box.innerHTML = location.hash;\ndocument.body.insertAdjacentHTML("beforeend", location.search);\n';
    expect(await errors(code, browserFile)).to.include.members(['no-unsanitized/property', 'no-unsanitized/method']);
  });
});
