import { Problem, problemType } from './problem.ts';

/** Keyset pagination position: the last row's creation time and id (ties broken by id). */
export type KeysetCursor = { createdAt: Date; id: string };

/** Opaque to clients: base64url of [ISO time, uuid]. */
export const encodeCursor = (c: KeysetCursor): string =>
  Buffer.from(JSON.stringify([c.createdAt.toISOString(), c.id])).toString('base64url');

export function decodeCursor(cursor: string): KeysetCursor {
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [unknown, unknown];
    const date = new Date(String(createdAt));
    if (typeof createdAt !== 'string' || Number.isNaN(date.getTime()) || typeof id !== 'string' || !/^[0-9a-f-]{36}$/.test(id))
      throw new Error('bad cursor');
    return { createdAt: date, id };
  } catch {
    throw new Problem({
      status: 400,
      type: problemType('invalid-cursor'),
      title: 'Invalid cursor',
      detail: 'The cursor is not one this API returned.',
    });
  }
}
