import { readFile } from 'node:fs/promises';
import { expect } from 'chai';

const root = new URL('../../', import.meta.url);

/** One `test/….ts → "title", "title"` citation: the file and the quoted titles after it. */
interface Citation {
  file: string;
  titles: string[];
}

/**
 * Reads every citation in docs/security.md. A citation is a test path followed by the quoted
 * titles up to the next path; `\"` inside a title is a literal quote.
 */
export function citations(markdown: string): Citation[] {
  const found: Citation[] = [];
  const paths = [...markdown.matchAll(/test\/[\w./-]+\.ts/g)];
  paths.forEach((match, i) => {
    const end = paths[i + 1]?.index ?? markdown.length;
    // Titles are cited on the same line as their path (one table row or list item).
    const after = markdown.slice(match.index + match[0].length, end).split('\n')[0]!;
    const titles = [...after.matchAll(/"((?:\\"|[^"])*)"/g)].map((m) => m[1]!.replaceAll('\\"', '"'));
    found.push({ file: match[0], titles });
  });
  return found;
}

/**
 * A cited title is in the file when each part between "…" (a cut or an interpolated value)
 * appears in the source, in order. Quote escapes in the source are undone first.
 */
export function titleIn(source: string, title: string): boolean {
  const text = source.replaceAll("\\'", "'").replaceAll('\\"', '"');
  let from = 0;
  for (const part of title
    .split('…')
    .map((p) => p.trim())
    .filter((p) => p !== '')) {
    const at = text.indexOf(part, from);
    if (at < 0) return false;
    from = at + part.length;
  }
  return true;
}

/** docs/security.md maps security requirements to tests; this keeps those names true. */
describe('docs/security.md', function () {
  it('every test cited in docs/security.md exists', async function () {
    const doc = await readFile(new URL('docs/security.md', root), 'utf8');
    const cited = citations(doc);
    expect(cited.length, 'no citations found: did the format change?').to.be.greaterThan(50);
    const missing: string[] = [];
    for (const { file, titles } of cited) {
      const source = await readFile(new URL(file, root), 'utf8').catch(() => undefined);
      if (source === undefined) {
        missing.push(`${file} (no such file)`);
        continue;
      }
      for (const title of titles) if (!titleIn(source, title)) missing.push(`${file} → "${title}"`);
    }
    expect(missing, 'cited tests that do not exist').to.deep.equal([]);
  });

  it('the citation reader finds titles and cut titles, and can fail', function () {
    const doc = 'x | test/a.test.ts → "one", "two \\"q\\" …"; test/b.test.ts → "three" |';
    expect(citations(doc)).to.deep.equal([
      { file: 'test/a.test.ts', titles: ['one', 'two "q" …'] },
      { file: 'test/b.test.ts', titles: ['three'] },
    ]);
    const source = "it('two \"q\" and more'); it(`locks after ${n} wrong`); it('B\\'s')";
    expect(titleIn(source, 'two "q" …')).to.equal(true);
    expect(titleIn(source, 'locks after … wrong')).to.equal(true);
    expect(titleIn(source, "B's")).to.equal(true);
    expect(titleIn(source, 'wrong … locks after')).to.equal(false);
    expect(titleIn(source, 'three')).to.equal(false);
  });
});
