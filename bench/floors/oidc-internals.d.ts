// oidc-provider's in-memory adapter keeps its state in an LRU of 1000 entries (created per
// provider); the floor builds the same adapter over a larger LRU. No type definitions ship for
// these internal paths.
declare module 'oidc-provider/lib/adapters/memory_adapter.js' {
  import type { Adapter } from 'oidc-provider';
  const MemoryAdapter: new (model: string, store: unknown, clockTolerance?: number) => Adapter;
  export default MemoryAdapter;
}
declare module 'oidc-provider/lib/helpers/lru.js' {
  export default class LRU {
    constructor(options: { maxSize: number });
    get(key: string): unknown;
  }
}
