// Vitest configuration for the Durable Streams conformance run (tests/durable_streams.sh).
// One test file, run once, with the default per-test timeout the suite's own CLI uses (the suite
// lengthens it itself for its long-poll tests); the results go, as JSON, to DS_RESULTS_FILE for
// tests/durable_streams_conformance.rs to compare with known-failures.txt.
import { defineConfig } from "vitest/config"

const results = process.env.DS_RESULTS_FILE
if (!results) {
  throw new Error("DS_RESULTS_FILE must name the file for the JSON results")
}

export default defineConfig({
  test: {
    include: ["conformance.test.js"],
    watch: false,
    reporters: ["default", "json"],
    outputFile: { json: results },
  },
})
