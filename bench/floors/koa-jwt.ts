import { importJWK, jwtVerify, type JWK } from 'jose';
import Koa from 'koa';

/**
 * Floor for scenario 4: a Koa app whose only work is `jose.jwtVerify` of an ES256 bearer token
 * with a local key (imported once at start), answering the claims as JSON.
 */
const port = Number(process.env.PORT);
const key = await importJWK(JSON.parse(process.env.BENCH_PUBLIC_JWK ?? '{}') as JWK, 'ES256');
const issuer = process.env.BENCH_ISSUER ?? '';
const audience = process.env.BENCH_AUDIENCE ?? '';

const app = new Koa();
app.use(async (ctx) => {
  const match = /^Bearer (.+)$/.exec(ctx.get('Authorization'));
  if (!match?.[1]) {
    ctx.status = 401;
    return;
  }
  try {
    const { payload } = await jwtVerify(match[1], key, { issuer, audience, typ: 'at+jwt', algorithms: ['ES256'] });
    ctx.body = { sub: payload.sub, scope: payload.scope };
  } catch {
    ctx.status = 401;
  }
});
app.listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
// Exit normally on SIGTERM so --cpu-prof writes its profile.
process.on('SIGTERM', () => process.exit(0));
