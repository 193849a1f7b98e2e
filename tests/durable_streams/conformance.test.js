// The official Durable Streams conformance suite against the server at DS_BASE_URL (for Palisade,
// `<broker url>/ds`). DS_LONG_POLL_MS is the server's long-poll timeout: the suite's long-poll
// tests wait up to that plus one second. The suite's optional subscription tests stay off.
import { runConformanceTests } from "@durable-streams/server-conformance-tests"

const baseUrl = process.env.DS_BASE_URL
if (!baseUrl) {
  throw new Error("DS_BASE_URL must be the server's Durable Streams base URL")
}
const longPollTimeoutMs = Number(process.env.DS_LONG_POLL_MS ?? "20000")
if (!Number.isInteger(longPollTimeoutMs) || longPollTimeoutMs <= 0) {
  throw new Error(`DS_LONG_POLL_MS must be a positive whole number of ms, not ${process.env.DS_LONG_POLL_MS}`)
}

runConformanceTests({ baseUrl, longPollTimeoutMs })
