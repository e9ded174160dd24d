// The node's heap on MicroPython's WebAssembly port (32-bit pointers), run by node:
//
//     node wasm_heap.mjs PORT_DIR REPO BYTECODE_DIR METERS MINUTES SPEED
//
// PORT_DIR holds micropython.mjs and micropython.wasm (scripts/provision.d/30-micropython-wasm.sh).
// BYTECODE_DIR holds semfw/, semsim/ and harness/ (this probe) as mpy-cross made them (as a
// board runs them: no compiler garbage in the figures). They, the scenario and the probe are copied into the port's
// in-memory file system; benchmarks/firmware/wasm_node.py does the rest (key=value lines).
import { readdirSync, readFileSync } from "node:fs";

const [portDir, repo, bytecode, meters, minutes, speed] = process.argv.slice(2);
const { loadMicroPython } = await import(portDir + "/micropython.mjs");
const mp = await loadMicroPython({ stdout: (line) => console.log(line), linebuffer: true });

function copy(relative, filter, from = repo + "/" + relative) {
  let path = "";
  for (const part of ("/sem/" + relative).split("/").filter(Boolean)) {
    path += "/" + part;
    try {
      mp.FS.mkdir(path);
    } catch {
      // exists
    }
  }
  for (const name of readdirSync(from)) {
    if (filter(name)) {
      mp.FS.writeFile("/sem/" + relative + "/" + name, readFileSync(from + "/" + name));
    }
  }
}

copy("firmware/semfw", (name) => name.endsWith(".mpy"), bytecode + "/semfw");
copy("firmware/semsim", (name) => name.endsWith(".mpy"), bytecode + "/semsim");
copy("firmware/scenarios", (name) => name === "paper.json");
copy("benchmarks/firmware", (name) => name.endsWith(".mpy"), bytecode + "/harness");
await mp.runPythonAsync(`
import gc
gc.collect()
print("heap_bare=%d" % gc.mem_alloc())
import sys
sys.path.insert(0, "/sem/benchmarks/firmware")
import wasm_node
await wasm_node.main("/sem", ${Number(meters)}, ${Number(minutes)}, ${Number(speed)})
`);
