import { generateKeyPair, jwtVerify, SignJWT } from 'jose';

/**
 * JWT signing and verification cost per algorithm with jose (the library both servers use):
 * CPU-µs per operation, sequential, this process. Prints one JSON line.
 */
const seconds = Number(process.env.BENCH_SECONDS ?? 1);
const claims = {
  iss: 'https://issuer.example',
  aud: 'https://api.example',
  sub: 'user-1234567890',
  scope: 'records:read records:write',
  client_id: 'client-abc',
};

async function cpuPerOp(op: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 20; i++) await op();
  const cpu0 = process.cpuUsage();
  const end = performance.now() + seconds * 1000;
  let n = 0;
  while (performance.now() < end) {
    await op();
    n++;
  }
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / n;
}

const results: Record<string, { signUs: number; verifyUs: number }> = {};
for (const alg of ['ES256', 'EdDSA', 'RS256'] as const) {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: false });
  const sign = () => new SignJWT(claims).setProtectedHeader({ alg, typ: 'at+jwt' }).setIssuedAt().setExpirationTime('10m').sign(privateKey);
  const token = await sign();
  results[alg] = { signUs: await cpuPerOp(sign), verifyUs: await cpuPerOp(() => jwtVerify(token, publicKey)) };
}
process.stdout.write(`${JSON.stringify(results)}\n`);
