import { expect } from 'chai';
import { describeScope } from '../../src/shared/scopes.ts';
import { ACR, acrRank, requiredRank } from '../../src/services/mfa-policy.ts';

/**
 * Found by the R12 SAST rules (security/detect-object-injection): tables indexed with text a
 * request chooses (acr_values, scope names) answered Object.prototype's members for names such
 * as "constructor" or "toString": acrRank('constructor') was the Object function, not a rank.
 * They are Maps now, which know only their own keys.
 */
describe('R12 lookups keyed by request text know only their own keys', function () {
  const prototypeNames = ['constructor', 'toString', 'valueOf', '__proto__', 'hasOwnProperty'];

  it('R12 an acr value named like an Object.prototype member has rank 0', function () {
    for (const name of prototypeNames) expect(acrRank(name), name).to.equal(0);
    expect(requiredRank({ requestedAcrs: ['constructor', ACR.mfa] })).to.equal(acrRank(ACR.mfa));
    expect(requiredRank({ requestedAcrs: ['toString'] })).to.equal(0);
  });

  it('R12 a scope named like an Object.prototype member is described by its own name', function () {
    for (const name of prototypeNames) expect(describeScope(name), name).to.deep.equal({ name, text: name });
  });
});
