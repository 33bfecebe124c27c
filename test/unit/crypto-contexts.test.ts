import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { createCryptoBox } from '../../src/shared/crypto-box.ts';
import { KEY_PURPOSE, SEAL_CONTEXT } from '../../src/shared/crypto-contexts.ts';
import { ADVISORY_LOCK, ADVISORY_LOCK_NAMESPACE } from '../../src/store/advisory-locks.ts';

/** Each context's fixed text: what it yields before the first row id (all of it when it takes none). */
const MARK = '\u0000';
const fixedPart = (context: (...ids: string[]) => string): string => context(MARK, MARK).split(MARK)[0] ?? '';

describe('issue 18 encryption contexts and lock names are defined once and distinct', function () {
  const contexts = Object.entries(SEAL_CONTEXT) as [string, (...ids: string[]) => string][];

  it('no sealing context is a prefix of another, so a value sealed for one kind of row never opens as another kind', function () {
    const fixed = contexts.map(([name, context]) => [name, fixedPart(context)] as const);
    for (const [name, prefix] of fixed) {
      expect(prefix, name).to.not.equal('');
      for (const [other, otherPrefix] of fixed) {
        if (other !== name) expect(otherPrefix.startsWith(prefix), `${other} starts with ${name}'s "${prefix}"`).to.equal(false);
      }
    }
  });

  it('a context binds the row: the same id gives different contexts for different kinds, different ids different contexts', function () {
    const all = contexts.map(([, context]) => context('u1', 'o1'));
    expect(new Set(all).size).to.equal(all.length);
    for (const [name, context] of contexts) {
      if (context.length > 0) expect(context('a', 'o'), name).to.not.equal(context('b', 'o'));
    }
  });

  it('a value sealed under one context does not open under another', function () {
    const box = createCryptoBox(randomBytes(32));
    const sealed = box.seal('secret', SEAL_CONTEXT.totpSecret('u1'));
    expect(box.open(sealed, SEAL_CONTEXT.totpSecret('u1')).toString()).to.equal('secret');
    expect(() => box.open(sealed, SEAL_CONTEXT.dataKey('u1'))).to.throw(/authentication failed/);
    expect(() => box.open(sealed, SEAL_CONTEXT.totpSecret('u2'))).to.throw(/authentication failed/);
  });

  it('HKDF purposes, advisory lock names and lock namespaces are each distinct', function () {
    for (const table of [KEY_PURPOSE, ADVISORY_LOCK, ADVISORY_LOCK_NAMESPACE]) {
      const values = Object.values(table) as unknown[];
      expect(new Set(values).size, JSON.stringify(table)).to.equal(values.length);
    }
  });
});
