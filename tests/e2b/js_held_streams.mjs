// The JavaScript SDK (npm e2b) holding more envd streams than its default pool of 200 connections.
// Env: the client environment `kruise-agents serve` prints, E2B_JS_SDK (file URL of the SDK's
// dist/index.mjs), SANDBOX_ID and STREAMS (how many streams to hold open).
// Prints one JSON line {"held", "after"}: how many streams were open, and what a command run
// after them printed (null if it never ran: a call waiting for a connection waits forever).
const { Sandbox } = await import(process.env.E2B_JS_SDK)

const streams = Number(process.env.STREAMS)
let held = 0
const report = (after) => {
  console.log(JSON.stringify({ held, after }))
  process.exit(0)
}
const watchdog = setTimeout(() => report(null), 10000)

const sbx = await Sandbox.connect(process.env.SANDBOX_ID)
// One background command; every `commands.connect` to it is one more open stream.
const sleeper = await sbx.commands.run('sleep 60', { background: true, timeoutMs: 0 })
held = 1
while (held < streams) {
  await sbx.commands.connect(sleeper.pid, { timeoutMs: 0 })
  held++
}
const after = (await sbx.commands.run('echo past the pool')).stdout.trim()
clearTimeout(watchdog)
await sleeper.kill()
report(after)
