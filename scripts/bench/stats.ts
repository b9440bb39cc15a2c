/** Order statistics of a sample, in the sample's unit. */
export interface Summary {
  n: number;
  min: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentile of an ascending array (`p` from 0 to 100); NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] ?? Number.NaN;
}

/** Summary of a sample (NaN fields when it is empty). */
export function summarize(values: readonly number[]): Summary {
  const s = [...values].sort((a, b) => a - b);
  const sum = s.reduce((a, b) => a + b, 0);
  return {
    n: s.length,
    min: s[0] ?? Number.NaN,
    p50: percentile(s, 50),
    p95: percentile(s, 95),
    p99: percentile(s, 99),
    max: s.at(-1) ?? Number.NaN,
    mean: s.length > 0 ? sum / s.length : Number.NaN,
  };
}

/** One metric as prom-client's `getMetricsAsJSON()` gives it. */
export interface MetricJson {
  name: string;
  type: string;
  values: { value: number; labels: Record<string, string | number>; metricName?: string }[];
}

/** A histogram series read back from its buckets: count, mean and quantiles (seconds). */
export interface HistogramSummary {
  labels: Record<string, string>;
  count: number;
  mean: number;
  /** Quantiles interpolated linearly inside their bucket (the usual Prometheus estimate). */
  p50: number;
  p95: number;
  p99: number;
}

/**
 * Every series of a histogram, one per distinct value of `by` labels, with count, mean and estimated
 * quantiles. Empty when the metric is missing.
 */
export function histogramSeries(
  metrics: readonly MetricJson[],
  name: string,
  by: readonly string[] = [],
): HistogramSummary[] {
  const metric = metrics.find((m) => m.name === name);
  if (!metric) return [];
  const groups = new Map<
    string,
    { labels: Record<string, string>; sum: number; count: number; buckets: Map<number, number> }
  >();
  for (const v of metric.values) {
    const labels = Object.fromEntries(by.map((k) => [k, String(v.labels[k] ?? '')]));
    const key = JSON.stringify(labels);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { labels, sum: 0, count: 0, buckets: new Map() }));
    if (v.metricName?.endsWith('_sum')) g.sum += v.value;
    else if (v.metricName?.endsWith('_count')) g.count += v.value;
    else if (v.metricName?.endsWith('_bucket')) {
      const le = v.labels['le'] === '+Inf' ? Number.POSITIVE_INFINITY : Number(v.labels['le']);
      g.buckets.set(le, (g.buckets.get(le) ?? 0) + v.value);
    }
  }
  return [...groups.values()]
    .filter((g) => g.count > 0)
    .map((g) => {
      const bounds = [...g.buckets.entries()].sort((a, b) => a[0] - b[0]);
      const q = (p: number) => bucketQuantile(bounds, g.count, p);
      return {
        labels: g.labels,
        count: g.count,
        mean: g.sum / g.count,
        p50: q(0.5),
        p95: q(0.95),
        p99: q(0.99),
      };
    });
}

/** Quantile from cumulative buckets `[le, count]`, interpolated within the bucket it falls in. */
function bucketQuantile(bounds: readonly [number, number][], total: number, q: number): number {
  const target = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, count] of bounds) {
    if (count >= target) {
      if (!Number.isFinite(le)) return prevLe; // beyond the last finite bucket: its bound is all we know
      const inBucket = count - prevCount;
      return inBucket > 0 ? prevLe + ((le - prevLe) * (target - prevCount)) / inBucket : le;
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}

/** Sum of a counter's values whose labels match `where`. */
export function counterTotal(
  metrics: readonly MetricJson[],
  name: string,
  where: Record<string, string> = {},
): number {
  const metric = metrics.find((m) => m.name === name);
  if (!metric) return 0;
  return metric.values
    .filter((v) => Object.entries(where).every(([k, want]) => String(v.labels[k]) === want))
    .reduce((a, v) => a + v.value, 0);
}

/** Operations per second, or NaN when no time passed. */
export function rate(count: number, ms: number): number {
  return ms > 0 ? (count * 1000) / ms : Number.NaN;
}
