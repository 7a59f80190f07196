// Streaming envd calls of the JavaScript SDK (npm e2b) refused before their handler runs.
// Env: E2B_JS_SDK (file URL of the SDK's dist/index.mjs), ENVD_URL, SANDBOX_ID, TOKEN.
// Prints one JSON line per call: {"call", "error"} with the error the SDK raised.
const { Sandbox } = await import(process.env.E2B_JS_SDK)

// Wired as Sandbox.create wires it after the API call (the fake envd has no control plane).
const sandbox = (token) =>
  new Sandbox({
    sandboxId: process.env.SANDBOX_ID,
    sandboxUrl: process.env.ENVD_URL,
    envdAccessToken: token,
    envdVersion: '0.6.13',
    apiKey: 'e2b_unused',
  })

const good = sandbox(process.env.TOKEN)
const wrong = sandbox('wrong-token')
const calls = {
  'commands.run user': () => good.commands.run('true', { user: 'nobody' }),
  'files.watchDir user': () => good.files.watchDir('/home/user', () => {}, { user: 'nobody' }),
  'pty.create user': () => good.pty.create({ cols: 80, rows: 24, onData: () => {}, user: 'nobody' }),
  'commands.run token': () => wrong.commands.run('true'),
}
for (const [call, fn] of Object.entries(calls)) {
  let error = null
  try {
    await fn()
  } catch (e) {
    error = `${e.constructor.name}: ${e.message}`
  }
  console.log(JSON.stringify({ call, error }))
}
