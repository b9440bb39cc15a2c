import { describe, expect, it } from 'vitest';
import { histogramSeries, percentile, summarize, type MetricJson } from './stats.js';

describe('benchmark statistics', () => {
  it('takes nearest-rank percentiles', () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(sorted, 50)).toBe(50);
    expect(percentile(sorted, 99)).toBe(99);
    expect(percentile([7], 99)).toBe(7);
    expect(summarize([]).p50).toBeNaN();
    expect(summarize([3, 1, 2])).toMatchObject({ n: 3, min: 1, p50: 2, max: 3, mean: 2 });
  });

  it('reads a histogram back from its cumulative buckets, per label', () => {
    const bucket = (queue: string, le: string, value: number) => ({
      value,
      labels: { queue, le },
      metricName: 'h_bucket',
    });
    const metrics: MetricJson[] = [
      {
        name: 'h',
        type: 'histogram',
        values: [
          bucket('a', '0.01', 50),
          bucket('a', '0.1', 100),
          bucket('a', '+Inf', 100),
          { value: 2, labels: { queue: 'a' }, metricName: 'h_sum' },
          { value: 100, labels: { queue: 'a' }, metricName: 'h_count' },
        ],
      },
    ];
    const [a] = histogramSeries(metrics, 'h', ['queue']);
    expect(a).toMatchObject({ labels: { queue: 'a' }, count: 100, mean: 0.02 });
    expect(a!.p50).toBeCloseTo(0.01);
    expect(a!.p95).toBeCloseTo(0.01 + 0.09 * 0.9);
  });
});
