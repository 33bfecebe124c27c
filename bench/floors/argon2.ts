import { availableParallelism } from 'node:os';
import argon2 from 'argon2';

/**
 * Floor for scenario 5: argon2id with Portcullis's parameters (ARGON2_* or the defaults:
 * OWASP 19 MiB, t=2, p=1). Prints one JSON line: CPU-µs of one verify (sequential, this
 * process's CPU time), and hashes/verifies per second with every core busy.
 */
const memoryCost = Number(process.env.ARGON2_MEMORY_KIB ?? 19456);
const timeCost = Number(process.env.ARGON2_TIME_COST ?? 2);
const parallelism = Number(process.env.ARGON2_PARALLELISM ?? 1);
const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const options = { type: argon2.argon2id as 2, memoryCost, timeCost, parallelism };

const password = 'correct horse battery staple';
const hash = await argon2.hash(password, options);
for (let i = 0; i < 3; i++) await argon2.verify(hash, password);

// Sequential: CPU per verify.
const cpu0 = process.cpuUsage();
let sequential = 0;
const seqEnd = performance.now() + (seconds * 1000) / 2;
while (performance.now() < seqEnd) {
  if (!(await argon2.verify(hash, password))) throw new Error('verify failed');
  sequential++;
}
const cpu1 = process.cpuUsage(cpu0);
const cpuUsPerVerify = (cpu1.user + cpu1.system) / sequential;

// All cores: one verify in flight per core (the libuv pool runs them in parallel).
const cores = availableParallelism();
let parallel = 0;
const parStart = performance.now();
const parEnd = parStart + (seconds * 1000) / 2;
await Promise.all(
  Array.from({ length: cores }, async () => {
    while (performance.now() < parEnd) {
      await argon2.verify(hash, password);
      parallel++;
    }
  }),
);
const verifiesPerSecond = parallel / ((performance.now() - parStart) / 1000);
process.stdout.write(`${JSON.stringify({ memoryCost, timeCost, parallelism, cores, cpuUsPerVerify, verifiesPerSecond })}\n`);
