/**
 * `make(key)` once per key object, kept as long as the key lives (a WeakMap): one loader, writer or
 * queue per database handle, made on first use.
 */
export function perObject<K extends object, V>(make: (key: K) => V): (key: K) => V {
  const made = new WeakMap<K, V>();
  return (key) => {
    let value = made.get(key);
    if (value === undefined) made.set(key, (value = make(key)));
    return value;
  };
}
