// Compile contracts/*.sol offline with the pinned solc-js and write coordination/artifacts/*.json.
//   node scripts/compile_contracts.mjs          write the artifacts
//   node scripts/compile_contracts.mjs --check  exit 1 when the committed artifacts are stale
import { readFileSync, readdirSync, writeFileSync, existsSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const solc = require("solc");

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const SRC = join(ROOT, "contracts");
const OUT = join(ROOT, "coordination", "artifacts");
const EXPECTED_SOLC = "0.8.37";
// The contracts that get an artifact (the Python client deploys these).
const DEPLOYABLE = ["AIToken", "Staking", "IdentityRegistry", "JobMarket", "AXLGovernor", "AXLTimelock"];
const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "cancun",
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
};

const version = solc.version();
if (!version.startsWith(EXPECTED_SOLC + "+")) {
  console.error(`solc ${version} found, ${EXPECTED_SOLC} pinned: run npm ci`);
  process.exit(2);
}

const sources = {};
for (const name of readdirSync(SRC).sort()) {
  if (name.endsWith(".sol")) sources[name] = { content: readFileSync(join(SRC, name), "utf8") };
}

function findImports(path) {
  const candidates = [join(ROOT, "node_modules", path), join(SRC, path)];
  for (const file of candidates) {
    if (existsSync(file)) return { contents: readFileSync(file, "utf8") };
  }
  return { error: `not found: ${path}` };
}

const input = { language: "Solidity", sources, settings: SETTINGS };
const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
let failed = false;
for (const err of output.errors ?? []) {
  if (err.severity === "error") failed = true;
  // Warnings inside the pinned OpenZeppelin release are not ours to fix.
  const inDependency = err.sourceLocation?.file?.startsWith("@openzeppelin/");
  if (err.severity === "error" || !inDependency) console.error(err.formattedMessage);
}
if (failed) process.exit(1);

const ozVersion = JSON.parse(
  readFileSync(join(ROOT, "node_modules", "@openzeppelin", "contracts", "package.json"), "utf8"),
).version;

const artifacts = {};
for (const [file, contracts] of Object.entries(output.contracts)) {
  for (const [name, c] of Object.entries(contracts)) {
    if (!DEPLOYABLE.includes(name) || file !== `${name}.sol`) continue;
    const artifact = {
      contractName: name,
      sourceName: `contracts/${file}`,
      compiler: { solc: version, openzeppelin: ozVersion, settings: { optimizer: SETTINGS.optimizer, evmVersion: SETTINGS.evmVersion } },
      abi: c.abi,
      bytecode: "0x" + c.evm.bytecode.object,
    };
    artifacts[name] = JSON.stringify(artifact, null, 1) + "\n";
    const size = c.evm.bytecode.object.length / 2;
    console.error(`${name}: ${size} bytes initcode`);
  }
}
for (const name of DEPLOYABLE) {
  if (!(name in artifacts)) {
    console.error(`no artifact for ${name}`);
    process.exit(1);
  }
}

if (process.argv.includes("--check")) {
  const stale = DEPLOYABLE.filter((name) => {
    const file = join(OUT, `${name}.json`);
    return !existsSync(file) || readFileSync(file, "utf8") !== artifacts[name];
  });
  if (stale.length) {
    console.error(`stale artifacts: ${stale.join(", ")}; run: node scripts/compile_contracts.mjs`);
    process.exit(1);
  }
  console.error("artifacts are up to date");
} else {
  mkdirSync(OUT, { recursive: true });
  for (const name of DEPLOYABLE) writeFileSync(join(OUT, `${name}.json`), artifacts[name]);
  console.error(`wrote ${DEPLOYABLE.length} artifacts to ${OUT}`);
}
