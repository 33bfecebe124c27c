import { expect } from 'chai';
import {
  ACR,
  acrMeeting,
  acrNamed,
  acrRank,
  addStep,
  authenticationContext,
  decideSecondFactor,
  requiredRank,
} from '../../src/services/mfa-policy.ts';
import { essentialAcrValues } from '../../src/auth/claims-parameter.ts';

/** The MFA policy (src/services/mfa-policy.ts): pure functions, no server. */
describe('MFA policy decisions', function () {
  const base = { enrolled: [] as ('totp' | 'webauthn')[], recoveryCodesLeft: 0, roleRequiresMfa: false, requiredRank: 0 };

  it('lets a user without factors and without requirements in with the password', function () {
    expect(decideSecondFactor(base)).to.deep.equal({ kind: 'done' });
  });

  it('asks any enrolled user for a factor of their choice, recovery codes as fallback', function () {
    expect(decideSecondFactor({ ...base, enrolled: ['webauthn', 'totp'], recoveryCodesLeft: 3 })).to.deep.equal({
      kind: 'challenge',
      factors: ['webauthn', 'totp'],
      recovery: true,
      userVerification: false,
    });
    expect(decideSecondFactor({ ...base, enrolled: ['totp'] })).to.deep.equal({
      kind: 'challenge',
      factors: ['totp'],
      recovery: false,
      userVerification: false,
    });
  });

  it('sends a user who must have MFA (role, client or acr) but has none to enrollment', function () {
    expect(decideSecondFactor({ ...base, roleRequiresMfa: true })).to.deep.equal({ kind: 'enroll', factors: ['totp', 'webauthn'] });
    expect(decideSecondFactor({ ...base, requiredRank: 2 })).to.deep.equal({ kind: 'enroll', factors: ['totp', 'webauthn'] });
  });

  it('accepts only a passkey with user verification when the passkey acr is requested and the user has one', function () {
    expect(decideSecondFactor({ ...base, enrolled: ['totp', 'webauthn'], recoveryCodesLeft: 5, requiredRank: 3 })).to.deep.equal({
      kind: 'challenge',
      factors: ['webauthn'],
      recovery: false,
      userVerification: true,
    });
  });

  it('R1 decideSecondFactor: a user with any factor passes one before any enrolment, whatever is required', function () {
    const totpOnly = { ...base, enrolled: ['totp'] as ('totp' | 'webauthn')[], recoveryCodesLeft: 4 };
    const challenge = { kind: 'challenge', factors: ['totp'], recovery: true, userVerification: false };
    // Nothing passed yet: the TOTP challenge, for every requirement and role; never "enroll".
    for (const requiredRank of [0, 1, 2, 3]) {
      for (const roleRequiresMfa of [false, true]) {
        expect(
          decideSecondFactor({ ...totpOnly, requiredRank, roleRequiresMfa }),
          `rank ${requiredRank}, role ${roleRequiresMfa}`,
        ).to.deep.equal(challenge);
        expect(decideSecondFactor({ ...totpOnly, requiredRank, roleRequiresMfa, passedRank: 1 }), 'a password is no factor').to.deep.equal(
          challenge,
        );
      }
    }
    // A passkey-only user asked for loa:2 passes the passkey (presence is enough there).
    expect(decideSecondFactor({ ...base, enrolled: ['webauthn'], requiredRank: 2 })).to.deep.equal({
      kind: 'challenge',
      factors: ['webauthn'],
      recovery: false,
      userVerification: false,
    });
  });

  it('R1 decideSecondFactor: after a factor passed, a passkey-level request enrolls a passkey, then asks for it; only an assertion with user verification is done', function () {
    const totpOnly = { ...base, enrolled: ['totp'] as ('totp' | 'webauthn')[], requiredRank: 3 };
    expect(decideSecondFactor({ ...totpOnly, passedRank: 2 })).to.deep.equal({ kind: 'enroll', factors: ['webauthn'] });
    // Enrolled now, but enrolling proved nothing new: the assertion comes next.
    expect(decideSecondFactor({ ...totpOnly, enrolled: ['totp', 'webauthn'], passedRank: 2 })).to.deep.equal({
      kind: 'challenge',
      factors: ['webauthn'],
      recovery: false,
      userVerification: true,
    });
    expect(decideSecondFactor({ ...totpOnly, enrolled: ['totp', 'webauthn'], passedRank: 3 })).to.deep.equal({ kind: 'done' });
    // Without any factor: enrolment of a passkey only, then the assertion.
    expect(decideSecondFactor({ ...base, requiredRank: 3 })).to.deep.equal({ kind: 'enroll', factors: ['webauthn'] });
    expect(decideSecondFactor({ ...base, enrolled: ['webauthn'], requiredRank: 3, passedRank: 2 })).to.deep.equal({
      kind: 'challenge',
      factors: ['webauthn'],
      recovery: false,
      userVerification: true,
    });
  });

  it('R1 decideSecondFactor: a passed factor ends the sign-in when loa:2 is enough; enrolment is offered only to a user with no factor', function () {
    expect(decideSecondFactor({ ...base, enrolled: ['totp'], passedRank: 2 })).to.deep.equal({ kind: 'done' });
    expect(decideSecondFactor({ ...base, enrolled: ['totp'], roleRequiresMfa: true, requiredRank: 2, passedRank: 2 })).to.deep.equal({
      kind: 'done',
    });
    expect(decideSecondFactor({ ...base, roleRequiresMfa: true, passedRank: 2, enrolled: ['webauthn'] })).to.deep.equal({ kind: 'done' });
    for (const enrolled of [['totp'], ['webauthn'], ['webauthn', 'totp']] as ('totp' | 'webauthn')[][]) {
      for (const requiredRank of [0, 2, 3]) {
        expect(
          decideSecondFactor({ ...base, enrolled, requiredRank, roleRequiresMfa: true }).kind,
          `${enrolled.join('+')} at ${requiredRank}`,
        ).to.equal('challenge');
      }
    }
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

  it('R12 acrRank: request text that names an object property ranks as unknown', function () {
    for (const text of ['constructor', '__proto__', 'toString', 'hasOwnProperty', '', undefined])
      expect(acrRank(text), String(text)).to.equal(0);
    expect(requiredRank({ requestedAcrs: ['constructor', '__proto__'] })).to.equal(0);
  });

  it('acrMeeting: the strongest essential value the sign-in meets, or what it achieved when it meets none', function () {
    // A passkey sign-in asked for loa:2 is named loa:2 (a lower bound: the policy ranks a passkey above a code).
    expect(acrMeeting([ACR.mfa], ACR.passkey)).to.equal(ACR.mfa);
    expect(acrMeeting([ACR.password, ACR.mfa], ACR.passkey)).to.equal(ACR.mfa);
    expect(acrMeeting([ACR.password, ACR.mfa, ACR.passkey], ACR.passkey)).to.equal(ACR.passkey);
    expect(acrMeeting([ACR.password, ACR.mfa], ACR.password)).to.equal(ACR.password);
    // None met, or none asked for: what the sign-in achieved; unknown values never count.
    expect(acrMeeting([ACR.passkey], ACR.mfa)).to.equal(ACR.mfa);
    expect(acrMeeting([], ACR.mfa)).to.equal(ACR.mfa);
    expect(acrMeeting(['urn:unknown', 'constructor'], ACR.password)).to.equal(ACR.password);
  });

  it("R14 requiredRank: an essential acr decides over acr_values, at the client's floor; an essential acr nothing at the floor meets needs Infinity (unmet)", function () {
    expect(requiredRank({ requestedAcrs: [ACR.password], essentialAcrs: [ACR.mfa] })).to.equal(2);
    expect(requiredRank({ requestedAcrs: [ACR.passkey], essentialAcrs: [ACR.mfa] })).to.equal(2);
    expect(requiredRank({ essentialAcrs: [ACR.password, ACR.passkey], clientRequiresMfa: true })).to.equal(3);
    expect(requiredRank({ essentialAcrs: [ACR.password], clientRequiresMfa: true })).to.equal(Number.POSITIVE_INFINITY);
    expect(requiredRank({ essentialAcrs: [] })).to.equal(Number.POSITIVE_INFINITY);
    expect(requiredRank({ essentialAcrs: ['urn:unknown'] })).to.equal(Number.POSITIVE_INFINITY);
    expect(requiredRank({ requestedAcrs: [ACR.password], essentialAcrs: undefined, clientRequiresMfa: true })).to.equal(2);
  });

  it('R14 acrNamed: one of the essential values that meets the floor, or undefined when the sign-in cannot be named so', function () {
    expect(acrNamed({ essentialAcrs: [ACR.mfa] }, ACR.passkey)).to.equal(ACR.mfa);
    expect(acrNamed({ essentialAcrs: [ACR.password, ACR.passkey], clientRequiresMfa: true }, ACR.passkey)).to.equal(ACR.passkey);
    expect(acrNamed({ essentialAcrs: [ACR.password, ACR.passkey], clientRequiresMfa: true }, ACR.mfa)).to.equal(undefined);
    expect(acrNamed({ essentialAcrs: [ACR.password], clientRequiresMfa: true }, ACR.mfa)).to.equal(undefined);
    expect(acrNamed({ requestedAcrs: [ACR.mfa] }, ACR.password)).to.equal(undefined);
    expect(acrNamed({ requestedAcrs: [ACR.mfa] }, ACR.passkey)).to.equal(ACR.passkey);
    expect(acrNamed({}, ACR.password)).to.equal(ACR.password);
  });

  it('R14 essentialAcrValues: value and values together must both hold (their intersection); none asked for is undefined', function () {
    const claims = (acr: unknown) => ({ id_token: { acr } });
    expect(essentialAcrValues(claims({ essential: true, values: [ACR.mfa, 7] }))).to.deep.equal([ACR.mfa]);
    expect(essentialAcrValues(claims({ essential: true, value: ACR.mfa }))).to.deep.equal([ACR.mfa]);
    expect(essentialAcrValues(claims({ essential: true, value: ACR.password, values: [ACR.mfa] }))).to.deep.equal([]);
    expect(essentialAcrValues(claims({ essential: true, value: ACR.mfa, values: [ACR.password, ACR.mfa] }))).to.deep.equal([ACR.mfa]);
    expect(essentialAcrValues(claims({ values: [ACR.mfa] }))).to.equal(undefined);
    expect(essentialAcrValues(claims({ essential: true }))).to.equal(undefined);
    expect(essentialAcrValues({})).to.equal(undefined);
  });

  it('describes each way of signing in with RFC 8176 amr values and our acr', function () {
    expect(authenticationContext({ first: 'password' })).to.deep.equal({ amr: ['pwd'], acr: ACR.password });
    expect(authenticationContext({ first: 'password', second: 'totp' })).to.deep.equal({ amr: ['pwd', 'otp', 'mfa'], acr: ACR.mfa });
    expect(authenticationContext({ first: 'password', second: 'recovery' })).to.deep.equal({ amr: ['pwd', 'otp', 'mfa'], acr: ACR.mfa });
    expect(authenticationContext({ first: 'password', second: 'webauthn', deviceType: 'singleDevice', userVerified: false })).to.deep.equal(
      { amr: ['pwd', 'hwk', 'mfa'], acr: ACR.mfa },
    );
    // With user verification the passkey assertion is what loa:passkey means, password or not.
    expect(authenticationContext({ first: 'password', second: 'webauthn', deviceType: 'multiDevice', userVerified: true })).to.deep.equal({
      amr: ['pwd', 'swk', 'user', 'mfa'],
      acr: ACR.passkey,
    });
    expect(authenticationContext({ first: 'passkey', deviceType: 'multiDevice', userVerified: true })).to.deep.equal({
      amr: ['swk', 'user', 'mfa'],
      acr: ACR.passkey,
    });
    expect(authenticationContext({ first: 'passkey', deviceType: 'singleDevice', userVerified: false }).acr).to.equal(ACR.password);
  });

  it('R13 addStep: a step joins the methods the sign-in used before it; pwd only when a password was one of them; the stronger acr', function () {
    const totp = authenticationContext({ first: 'password', second: 'totp' });
    const passkey = authenticationContext({ first: 'password', second: 'webauthn', deviceType: 'singleDevice', userVerified: true });
    expect(addStep({ amr: ['pwd'], acr: '' }, totp)).to.deep.equal({ amr: ['pwd', 'otp', 'mfa'], acr: ACR.mfa });
    expect(addStep({ amr: ['pwd'], acr: ACR.password }, totp)).to.deep.equal({ amr: ['pwd', 'otp', 'mfa'], acr: ACR.mfa });
    expect(addStep(totp, passkey)).to.deep.equal({ amr: ['pwd', 'otp', 'hwk', 'user', 'mfa'], acr: ACR.passkey });
    // A sign-in that typed no password never gets pwd from a step's context.
    expect(addStep({ amr: ['swk'], acr: ACR.password }, totp)).to.deep.equal({ amr: ['swk', 'otp', 'mfa'], acr: ACR.mfa });
    // A weaker step never lowers the acr.
    expect(addStep(passkey, totp).acr).to.equal(ACR.passkey);
  });
});
