/** A one-slot wake-up signal between event listeners and a single waiting loop. */
export interface Wakeup {
  /** Wakes the waiter now, or the next `wait()` at once when nobody waits. */
  notify(): void;
  /** Resolves true when notified, false after `ms` without a notification. */
  wait(ms: number): Promise<boolean>;
}

/** Creates a wake-up signal (notifications before a wait are kept, several collapse into one). */
export function createWakeup(): Wakeup {
  let pending = false;
  let waiter: ((notified: boolean) => void) | null = null;
  return {
    notify() {
      if (waiter) {
        const w = waiter;
        waiter = null;
        w(true);
      } else pending = true;
    },
    wait(ms) {
      if (pending) {
        pending = false;
        return Promise.resolve(true);
      }
      return new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => {
          waiter = null;
          resolve(false);
        }, ms);
        waiter = (notified) => {
          clearTimeout(timer);
          resolve(notified);
        };
      });
    },
  };
}
