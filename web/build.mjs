// Builds the dashboard into ../internal/web/dist (embedded by the gateway).
//   node build.mjs           build dist/
//   node build.mjs --check   build into a temp dir and fail if dist/ differs (stale bundle)
//   node build.mjs --test    build the pure modules for node's test runner (build/test/)
import * as esbuild from "esbuild";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync, copyFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join, dirname } from "node:path";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "..", "internal", "web", "dist");
const mode = process.argv[2] ?? "";

async function build(out) {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(join(out, "assets"), { recursive: true });
  await esbuild.build({
    entryPoints: { app: join(here, "src", "main.ts") },
    bundle: true,
    minify: true,
    format: "esm",
    splitting: true,
    chunkNames: "[name]-[hash]",
    target: "es2022",
    outdir: join(out, "assets"),
    legalComments: "none",
    logLevel: "warning",
    loader: { ".css": "css" },
  });
  // The page's own styles after uPlot's.
  const css = readFileSync(join(out, "assets", "app.css"), "utf8");
  const own = (await esbuild.transform(readFileSync(join(here, "src", "style.css"), "utf8"), { loader: "css", minify: true })).code;
  writeFileSync(join(out, "assets", "app.css"), css + own);
  copyFileSync(join(here, "src", "index.html"), join(out, "index.html"));
}

function files(dir, pre = "") {
  return readdirSync(join(dir, pre), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(dir, join(pre, e.name)) : [join(pre, e.name)],
  );
}

if (mode === "--test") {
  await esbuild.build({
    entryPoints: [join(here, "src", "render.ts")],
    bundle: true,
    format: "esm",
    platform: "node",
    outfile: join(here, "build", "test", "render.mjs"),
    logLevel: "warning",
  });
} else if (mode === "--check") {
  const tmp = mkdtempSync(join(tmpdir(), "ftgate-web-"));
  try {
    await build(tmp);
    const a = files(tmp).sort();
    const b = files(dist).sort();
    const diff = [...new Set([...a, ...b])].filter((f) => {
      try {
        return !readFileSync(join(tmp, f)).equals(readFileSync(join(dist, f)));
      } catch {
        return true;
      }
    });
    if (diff.length) {
      console.error(`internal/web/dist is stale (differs from a fresh build in: ${diff.join(", ")}): run make web-build and commit it`);
      process.exit(1);
    }
    console.log("internal/web/dist matches a fresh build");
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
} else {
  await build(dist);
  let raw = 0;
  let gz = 0;
  for (const f of files(dist)) {
    const b = readFileSync(join(dist, f));
    raw += b.length;
    gz += gzipSync(b, { level: 9 }).length;
    if (f.endsWith(".js") || f.endsWith(".css")) console.log(`${f}: ${b.length} bytes, ${gzipSync(b, { level: 9 }).length} gzipped`);
  }
  console.log(`dist: ${raw} bytes, ${gz} gzipped`);
}
