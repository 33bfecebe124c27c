import { expect } from 'chai';
import { ACR, acrRank, authenticationContext, decideSecondFactor, requiredRank } from '../../src/services/mfa-policy.ts';

describe('MFA policy decisions', function () {
  const base = { enrolled: [] as ('totp' | 'webauthn')[], recoveryCodesLeft: 0, roleRequiresMfa: false, requiredRank: 0 };

  it('lets a user without factors and without requirements in with the password', function () {
    expect(decideSecondFactor(base)).to.deep.equal({ kind: 'done' });
  });

  it('asks any enrolled user for a factor of their choice, recovery codes as fallback', function () {
    expect(decideSecondFactor({ ...base, enrolled: ['webauthn', 'totp'], recoveryCodesLeft: 3 })).to.deep.equal({ kind: 'challenge', factors: ['webauthn', 'totp'], recovery: true });
    expect(decideSecondFactor({ ...base, enrolled: ['totp'] })).to.deep.equal({ kind: 'challenge', factors: ['totp'], recovery: false });
  });

  it('sends a user who must have MFA (role, client or acr) but has none to enrollment', function () {
    expect(decideSecondFactor({ ...base, roleRequiresMfa: true })).to.deep.equal({ kind: 'enroll', factors: ['totp', 'webauthn'] });
    expect(decideSecondFactor({ ...base, requiredRank: 2 })).to.deep.equal({ kind: 'enroll', factors: ['totp', 'webauthn'] });
  });

  it('accepts only passkeys when the passkey acr is requested', function () {
    expect(decideSecondFactor({ ...base, enrolled: ['totp', 'webauthn'], recoveryCodesLeft: 5, requiredRank: 3 })).to.deep.equal({ kind: 'challenge', factors: ['webauthn'], recovery: false });
    expect(decideSecondFactor({ ...base, enrolled: ['totp'], requiredRank: 3 })).to.deep.equal({ kind: 'enroll', factors: ['webauthn'] });
  });

  it('ranks acr values and treats acr_values as alternatives; require_mfa raises the floor', function () {
    expect(acrRank(ACR.password)).to.be.below(acrRank(ACR.mfa));
    expect(acrRank(ACR.mfa)).to.be.below(acrRank(ACR.passkey));
    expect(acrRank('urn:other')).to.equal(0);
    expect(requiredRank({})).to.equal(0);
    expect(requiredRank({ requestedAcrs: [ACR.passkey, ACR.mfa] })).to.equal(2);
    expect(requiredRank({ requestedAcrs: [ACR.password], clientRequiresMfa: true })).to.equal(2);
    expect(requiredRank({ requestedAcrs: ['urn:unknown'] })).to.equal(0);
  });

  it('describes each way of signing in with RFC 8176 amr values and our acr', function () {
    expect(authenticationContext({ first: 'password' })).to.deep.equal({ amr: ['pwd'], acr: ACR.password });
    expect(authenticationContext({ first: 'password', second: 'totp' })).to.deep.equal({ amr: ['pwd', 'otp', 'mfa'], acr: ACR.mfa });
    expect(authenticationContext({ first: 'password', second: 'recovery' })).to.deep.equal({ amr: ['pwd', 'otp', 'mfa'], acr: ACR.mfa });
    expect(authenticationContext({ first: 'password', second: 'webauthn', deviceType: 'singleDevice' })).to.deep.equal({ amr: ['pwd', 'hwk', 'mfa'], acr: ACR.mfa });
    expect(authenticationContext({ first: 'passkey', deviceType: 'multiDevice', userVerified: true })).to.deep.equal({ amr: ['swk', 'user', 'mfa'], acr: ACR.passkey });
    expect(authenticationContext({ first: 'passkey', deviceType: 'singleDevice', userVerified: false }).acr).to.equal(ACR.password);
  });
});
