// The JavaScript code-interpreter SDK (npm @e2b/code-interpreter) against the fake cluster.
// Configured by E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY; E2B_CODE_INTERPRETER_SDK is the
// file URL of the installed SDK's dist/index.mjs (its own `import "e2b"` resolves beside it),
// CELLS a JSON list of {name, code, envs?} run in order in a new sandbox's default context.
// Prints one JSON object: what each step got.
const { Sandbox } = await import(process.env.E2B_CODE_INTERPRETER_SDK)

const out = {}
const describe = (e) => ({ type: e.constructor.name, message: e.message })

const sbx = await Sandbox.create()
out.template = (await sbx.getInfo()).templateId

// Each cell with the four callbacks; what the execution and the callbacks got.
out.cells = {}
for (const cell of JSON.parse(process.env.CELLS)) {
  const seen = { stdout: [], stderr: [], results: 0, errors: [] }
  const execution = await sbx.runCode(cell.code, {
    envs: cell.envs,
    onStdout: (m) => { seen.stdout.push(m.line) },
    onStderr: (m) => { seen.stderr.push(m.line) },
    onResult: () => { seen.results += 1 },
    onError: (e) => { seen.errors.push(e.name) },
  })
  out.cells[cell.name] = {
    text: execution.text ?? null,
    // The fields of each result line as the server sent them (`raw`: `extra` included, which
    // the SDK's `result.extra` leaves out).
    results: execution.results.map((r) => ({ ...r.raw, is_main_result: r.isMainResult })),
    stdout: execution.logs.stdout,
    stderr: execution.logs.stderr,
    error: execution.error
      ? { name: execution.error.name, value: execution.error.value, traceback: execution.error.traceback }
      : null,
    execution_count: execution.executionCount ?? null,
    callbacks: seen,
  }
}

// A code context with a working directory: its own state, listed, restarted, removed.
await sbx.files.makeDir('/home/user/work')
const ctx = await sbx.createCodeContext({ cwd: '/home/user/work', language: 'python' })
out.context = { language: ctx.language, cwd: ctx.cwd }
out.context.dir = (await sbx.runCode("import os\nos.path.basename(os.getcwd())", { context: ctx })).text
await sbx.runCode("y = 'inner'", { context: ctx })
out.context.inner = (await sbx.runCode('y', { context: ctx })).text
out.context.outer = (await sbx.runCode("'y' in globals()")).text
out.context.listed = (await sbx.listCodeContexts()).some((c) => c.id === ctx.id)
await sbx.restartCodeContext(ctx)
out.context.after_restart = (await sbx.runCode("'y' in globals()", { context: ctx })).text
await sbx.removeCodeContext(ctx)
out.context.listed_after_remove = (await sbx.listCodeContexts()).some((c) => c.id === ctx.id)
try {
  await sbx.runCode('1', { context: ctx })
} catch (e) {
  out.context.removed = describe(e)
}

// A language this server has no kernel for.
try {
  await sbx.runCode('console.log(1)', { language: 'javascript' })
} catch (e) {
  out.language = describe(e)
}

// An execution past its timeoutMs; then the same context again: if the server had not
// interrupted the timed-out cell, this one would queue behind its 30 s sleep.
try {
  await sbx.runCode('import time\ntime.sleep(30)\nslept = True', { timeoutMs: 1000 })
} catch (e) {
  out.timeout = describe(e)
}
try {
  out.after_timeout = (await sbx.runCode("'slept' in globals()", { timeoutMs: 15000 })).text
} catch (e) {
  out.after_timeout = describe(e)
}

// A kill while runCode streams: the kill is sent once the cell has printed.
try {
  await sbx.runCode("import time\nprint('started', flush=True)\ntime.sleep(30)", {
    onStdout: (m) => {
      if (m.line.startsWith('started')) sbx.kill()
    },
  })
  out.killed = 'finished'
} catch (e) {
  out.killed = describe(e)
}

// Exit once written (a pipe is written asynchronously): a runCode refused with an HTTP error
// (the language above) leaves the SDK's request timer pending, which would keep Node.js alive
// for requestTimeoutMs (60 s) more.
process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0))
