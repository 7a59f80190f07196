// Smoke test of the JavaScript SDK (npm e2b) against the fake cluster:
// create, commands.run, files write/read, kill. Configured by E2B_API_URL,
// E2B_SANDBOX_URL and E2B_API_KEY; prints one "<step> ok" line per step.
import { Sandbox } from 'e2b'

const sbx = await Sandbox.create('base', { envs: { FROM_JS: 'node' } })
console.log('create ok', sbx.sandboxId)

const result = await sbx.commands.run('echo $FROM_JS')
if (result.stdout !== 'node\n') throw new Error(`unexpected stdout ${JSON.stringify(result)}`)
console.log('commands ok')

await sbx.files.write('/home/user/js.txt', 'written by node')
const text = await sbx.files.read('/home/user/js.txt')
if (text !== 'written by node') throw new Error(`unexpected file ${text}`)
console.log('files ok')

await sbx.kill()
console.log('kill ok')
