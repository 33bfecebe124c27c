import { Writable } from 'node:stream';
import { expect } from 'chai';
import { pino } from 'pino';
import { redactPaths } from '../../src/shared/logger.ts';

/** Nothing sensitive in logs: tokens, passwords and record content are redacted by pino. */
describe('log redaction for the resource API', function () {
  it('redacts record labels, data and sealed payloads, and bearer tokens', function () {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const logger = pino({ redact: { paths: redactPaths, censor: '[redacted]' } }, sink);
    logger.info({
      record: { id: 'r1', label: 'Passport', data: { number: 'X1234567' }, payload_sealed: 'v1.d1.aaa.bbb' },
      key: { key_wrapped: 'v1.m-abc.ccc.ddd' },
      req: { headers: { authorization: 'Bearer eyJhbGciOi' } },
    });
    const line = lines.join('');
    for (const secret of ['Passport', 'X1234567', 'v1.d1.aaa.bbb', 'v1.m-abc', 'eyJhbGciOi']) expect(line).to.not.include(secret);
    expect(line).to.include('"id":"r1"');
  });
});
