'use strict';

// How every benchmark takes its figures: interleaved rounds, each in a
// different order, and the median round counts.

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The list starting `by` places further on: nothing always runs first or last. */
function rotated(list, by) {
  const k = by % list.length;
  return list.slice(k).concat(list.slice(0, k));
}

module.exports = { median, rotated };
