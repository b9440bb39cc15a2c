import type { LookupAddress, LookupOptions } from 'node:dns';

/**
 * A `dns.lookup` stand-in that answers with the address already checked, whatever it is asked: the
 * connection goes where the policy looked, with no second lookup a rebinding DNS could answer
 * differently. Node 20 asks with `{ all: true }` (happy eyeballs), so both forms are served.
 */
export function pinnedLookup(address: string, family: 4 | 6) {
  return (
    _hostname: string,
    options: LookupOptions | ((...args: never[]) => void),
    callback?: (
      err: NodeJS.ErrnoException | null,
      address: string | LookupAddress[],
      family?: number,
    ) => void,
  ): void => {
    const cb = (typeof options === 'function' ? options : callback) as NonNullable<typeof callback>;
    const all = typeof options === 'object' && options.all === true;
    if (all) cb(null, [{ address, family }]);
    else cb(null, address, family);
  };
}
