'use strict';

/**
 * What an app with OpenTelemetry and an APM agent has, for the benchmarks
 * that measure what watching costs (http-app.js's ours-observed,
 * observed.js): a MeterProvider that aggregates every measurement, collected
 * and exported each second (to an exporter that drops it, as a network
 * exporter would once sent: the SDK's in-memory exporter keeps every export,
 * and over a long run its growing heap was most of what the app paid),
 * registered before the middleware is made, and a subscriber to every event
 * of the operations' tracing channel.
 */
function observe() {
  const { metrics } = require('@opentelemetry/api');
  const sdk = require('@opentelemetry/sdk-metrics');
  const exporter = {
    export: (resourceMetrics, done) => done({ code: 0 }), // ExportResultCode.SUCCESS
    forceFlush: async () => {},
    shutdown: async () => {},
  };
  const reader = new sdk.PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 1000 });
  metrics.setGlobalMeterProvider(new sdk.MeterProvider({ readers: [reader] }));
  let events = 0;
  const count = () => events++;
  require('node:diagnostics_channel')
    .tracingChannel('alt-session:operation')
    .subscribe({ start: count, end: count, asyncStart: count, asyncEnd: count, error: count });
}

module.exports = { observe };
