import { expect } from 'chai';
import { normalizeEmail } from '../../src/shared/email.ts';

describe('normalizeEmail (R7)', function () {
  it('R7 normalizeEmail: NFKC, trim, lower case; İ, ß and final sigma keep their identity', function () {
    expect(normalizeEmail('  Alice@Example.TEST ')).to.equal('alice@example.test');
    // Full-width letters and signs, and the Kelvin sign, are compatibility forms of ASCII.
    expect(normalizeEmail('ＡＬＩＣＥ＠ｅｘａｍｐｌｅ．ｔｅｓｔ')).to.equal('alice@example.test');
    expect(normalizeEmail('\u212Aate@x.test')).to.equal('kate@x.test');
    // İ lower-cases to i + combining dot above: another address than alice.
    expect(normalizeEmail('al\u0130ce@x.test')).to.equal('ali\u0307ce@x.test');
    expect(normalizeEmail('AL\u0130CE@X.TEST')).to.equal(normalizeEmail('al\u0130ce@x.test'));
    expect(normalizeEmail('al\u0130ce@x.test')).to.not.equal(normalizeEmail('alice@x.test'));
    // No folding of ß to ss (IDNA2008 keeps straße.de and strasse.de apart).
    expect(normalizeEmail('STRASSE@x.test')).to.equal('strasse@x.test');
    expect(normalizeEmail('straße@x.test')).to.equal('straße@x.test');
    // A capital sigma at a word's end is written as final sigma, as a person typing it would.
    expect(normalizeEmail('ΟΔΟΣ@x.test')).to.equal('οδος@x.test');
    // Spaces that NFKC produces (U+3000, U+00A0) are trimmed too.
    expect(normalizeEmail('\u3000bob@x.test\u00A0')).to.equal('bob@x.test');
  });

  it('R7 normalizeEmail is idempotent and its result already normal, for every code point of planes 0–2 and 14', function () {
    // Planes 3–13 hold no characters with decompositions or case mappings; 15–16 are private use.
    const codePoints = [...Array.from({ length: 0x30000 }, (_, i) => i), ...Array.from({ length: 0x1000 }, (_, i) => 0xe0000 + i)];
    const bad: string[] = [];
    for (const cp of codePoints) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      for (const text of [String.fromCodePoint(cp), `a${String.fromCodePoint(cp)}b`]) {
        const once = normalizeEmail(text);
        if (normalizeEmail(once) !== once || once.normalize('NFKC') !== once) bad.push(cp.toString(16));
      }
    }
    expect(bad).to.deep.equal([]);
  });
});
