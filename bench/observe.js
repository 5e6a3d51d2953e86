'use strict';

/**
 * What an app with OpenTelemetry and an APM agent has, for the benchmarks
 * that measure what watching costs (http-app.js's ours-observed,
 * observed.js): a MeterProvider that aggregates every measurement (exported
 * each second to memory, as an exporter would send it), registered before
 * the middleware is made, and a subscriber to every event of the
 * operations' tracing channel.
 */
function observe() {
  const { metrics } = require('@opentelemetry/api');
  const sdk = require('@opentelemetry/sdk-metrics');
  const exporter = new sdk.InMemoryMetricExporter(sdk.AggregationTemporality.CUMULATIVE);
  const reader = new sdk.PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 1000 });
  metrics.setGlobalMeterProvider(new sdk.MeterProvider({ readers: [reader] }));
  let events = 0;
  const count = () => events++;
  require('node:diagnostics_channel')
    .tracingChannel('alt-session:operation')
    .subscribe({ start: count, end: count, asyncStart: count, asyncEnd: count, error: count });
}

module.exports = { observe };
