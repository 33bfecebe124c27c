import { bodyParser } from '@koa/bodyparser';
import type { Context, Middleware } from 'koa';
import { Problem, problemType } from '../shared/problem.ts';

/**
 * The body parser of our form posts (sign-in, consent and account pages): urlencoded only, at
 * most 32 KiB, and never a compressed body. @koa/bodyparser would inflate any Content-Encoding
 * the client names; a brotli-labelled body over the limit then fails inside the decompressor
 * after the parser stopped listening, an uncaught exception that ends the process (R12, found by
 * the fuzz pass), and a body that does not decompress is a 500. Browsers never compress a form,
 * so a coded body is refused before anything reads it (415, RFC 9110 §15.5.16).
 */
export function formBody(): Middleware {
  const parse = bodyParser({ enableTypes: ['form'], formLimit: '32kb', encoding: 'utf-8' });
  return async function formBodyMiddleware(ctx, next) {
    const coding = ctx.get('Content-Encoding').trim().toLowerCase();
    if (coding !== '' && coding !== 'identity') {
      throw new Problem({
        status: 415,
        type: problemType('unsupported-media-type'),
        title: 'Unsupported content encoding',
        detail: 'Send the form without a Content-Encoding.',
        headers: { 'Accept-Encoding': 'identity' },
      });
    }
    await parse(ctx, next);
  };
}

/**
 * One short string field of a parsed form (`formBody`): '' when absent or empty; anything else
 * than a string of at most `max` characters (an array, a huge value) is refused with the page's
 * own problem, `invalid(detail)`.
 */
export function formField(ctx: Context, name: string, max: number, invalid: (detail: string) => Problem): string {
  // eslint-disable-next-line security/detect-object-injection -- name is one of our literal form field names; only the body is input
  const value = (ctx.request.body as Record<string, unknown> | undefined)?.[name];
  if (value === undefined || value === '') return '';
  if (typeof value !== 'string' || value.length > max) throw invalid(`The field "${name}" is not valid.`);
  return value;
}
