import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "./api.ts";

export interface Polled<T> {
  data: T | undefined;
  error: ApiError | undefined;
  /** Load again now (after a change made from the console). */
  reload: () => void;
}

/**
 * Loads now and again every `everyMs` (0: once), until the component goes or `deps` change; a load
 * never overlaps the previous one. The last good data stays on screen while a later load fails.
 */
export function usePoll<T>(load: () => Promise<T>, everyMs: number, deps: unknown[]): Polled<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [tick, setTick] = useState(0);
  const loader = useRef(load);
  loader.current = load;
  useEffect(() => {
    let live = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      try {
        const value = await loader.current();
        if (!live) return;
        setData(value);
        setError(undefined);
      } catch (err) {
        if (!live) return;
        setError(err instanceof ApiError ? err : new ApiError(0, { title: String(err) }));
      }
      if (live && everyMs > 0) timer = setTimeout(run, everyMs);
    };
    void run();
    return () => {
      live = false;
      if (timer) clearTimeout(timer);
    };
  }, [...deps, tick, everyMs]);
  return { data, error, reload: () => setTick((t) => t + 1) };
}
