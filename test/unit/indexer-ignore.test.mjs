// Ignore rules of the workspace indexer: .gitignore at every level, .git/info/exclude, .repollamaignore,
// exclude/include globs, and the rules of a repository the workspace sits inside.
import assert from "node:assert/strict";
import { test } from "node:test";
import { indexedPaths, loadIndexer, makeTree, options, tempDir } from "./support/indexer.mjs";

const { indexer } = await loadIndexer();

test("nested .gitignore with negations, anchored and folder patterns, info/exclude and .repollamaignore", async () => {
  const root = makeTree({
    ".gitignore": "*.log\n!keep.log\nbuild/\n/anchored.txt\ndocs/*.tmp\ndist/\n",
    ".git/info/exclude": "# local only\nfrom-info-exclude.txt\n",
    ".git/config": "[core]\n",
    ".repollamaignore": "secret-notes/\n!dist/\n",
    "a.ts": "a\n",
    "a.log": "log\n",
    "keep.log": "kept by !keep.log\n",
    "anchored.txt": "root only\n",
    "build/out.js": "x\n",
    "docs/x.tmp": "t\n",
    "docs/readme.md": "# docs\n",
    "other/build": "a file named build is not a build/ folder\n",
    "local.txt": "root local\n",
    "from-info-exclude.txt": "x\n",
    "dist/app.js": "re-included by .repollamaignore\n",
    "dist/app.log": "*.log still applies inside dist/\n",
    "dist/nested/deep.js": "x\n",
    "secret-notes/n.txt": "x\n",
    "x.snap": "sub's rule does not reach here\n",
    "sub/.gitignore": "!important.log\n/local.txt\ngenerated/\n",
    "sub/.repollamaignore": "*.snap\n",
    "sub/anchored.txt": "the root's /anchored.txt does not match here\n",
    "sub/b.log": "x\n",
    "sub/important.log": "re-included by sub/.gitignore\n",
    "sub/local.txt": "ignored by sub's /local.txt\n",
    "sub/deeper/local.txt": "sub's /local.txt is anchored to sub/\n",
    "sub/generated/g.ts": "x\n",
    "sub/build/y.js": "x\n",
    "sub/build-notes.txt": "x\n",
    "sub/docs/x.tmp": "docs/*.tmp has a slash, so it is anchored to the root\n",
    "sub/x.snap": "x\n",
  });
  const result = await indexer.indexWorkspace(root, options());
  assert.deepEqual(indexedPaths(result), [
    ".gitignore",
    ".repollamaignore",
    "a.ts",
    "dist/app.js",
    "dist/nested/deep.js",
    "docs/readme.md",
    "keep.log",
    "local.txt",
    "other/build",
    "sub/.gitignore",
    "sub/.repollamaignore",
    "sub/anchored.txt",
    "sub/build-notes.txt",
    "sub/deeper/local.txt",
    "sub/docs/x.tmp",
    "sub/important.log",
    "x.snap",
  ]);
  // a.log anchored.txt build/ docs/x.tmp from-info-exclude.txt dist/app.log secret-notes/
  // sub/b.log sub/local.txt sub/generated/ sub/build/ sub/x.snap; .git/ is never counted.
  assert.deepEqual(result.stats.skipped, { ignored: 12 });
  assert.ok(!result.segments.some((s) => s.text.includes("[core]")), ".git/ contents never reach the prompt");
});

test("exclude and include globs (files.exclude, search.exclude, index.include)", async () => {
  const root = makeTree({
    "README.md": "x\n",
    "notes.md": "x\n",
    "src/a.ts": "x\n",
    "src/b.tmp": "a glob without ** matches at the top level only\n",
    "src/generated/g.ts": "x\n",
    "c.tmp": "x\n",
    "vendor/lib.js": "x\n",
    "lib/x.ts": "x\n",
  });
  const result = await indexer.indexWorkspace(
    root,
    options({ exclude: ["**/generated/**", "*.tmp", "vendor"], include: ["src/**", "README.md"] }),
  );
  assert.deepEqual(indexedPaths(result), ["README.md", "src/a.ts", "src/b.tmp"]);
  assert.deepEqual(result.stats.skipped, { ignored: 3, notIncluded: 2 });

  const byFolder = await indexer.indexWorkspace(root, options({ include: ["lib", "{README,notes}.md"] }));
  assert.deepEqual(indexedPaths(byFolder), ["README.md", "lib/x.ts", "notes.md"]);
});

test("VS Code's default excludes are the CLI defaults", async () => {
  const root = makeTree({ "index.js": "x\n", "node_modules/dep/index.js": "x\n", "pkg/node_modules/d/x.js": "x\n" });
  const result = await indexer.indexWorkspace(root, indexer.defaultIndexOptions);
  assert.deepEqual(indexedPaths(result), ["index.js"]);
  assert.deepEqual(result.stats.skipped, { ignored: 2 });
  assert.equal(indexer.defaultIndexOptions.maxFileKB, 512);
});

test("a workspace inside a repository gets the repository's rules, but is never ignored itself", async () => {
  const repo = makeTree({
    ".gitignore": "node_modules/\n*.log\n",
    ".git/info/exclude": "*.bak\n",
    "packages/.gitignore": "/app/dist/\n",
    "packages/app/src/x.ts": "x\n",
    "packages/app/dist/out.js": "x\n",
    "packages/app/debug.log": "x\n",
    "node_modules/pkg/index.js": "x\n",
    "node_modules/pkg/debug.log": "x\n",
    "node_modules/pkg/old.bak": "x\n",
    "node_modules/pkg/lib/util.js": "x\n",
  });
  const pkg = await indexer.indexWorkspace(`${repo}/node_modules/pkg`, options());
  assert.deepEqual(indexedPaths(pkg), ["index.js", "lib/util.js"]);
  assert.deepEqual(pkg.stats.skipped, { ignored: 2 });

  const app = await indexer.indexWorkspace(`${repo}/packages/app`, options());
  assert.deepEqual(indexedPaths(app), ["src/x.ts"]);
  assert.deepEqual(app.stats.skipped, { ignored: 2 });
});

test("a .git file (worktree or submodule) points at the folder whose info/exclude applies", async () => {
  const gitDir = tempDir();
  makeTree({ "info/exclude": "excluded.txt\n" }, gitDir);
  const root = makeTree({ ".git": `gitdir: ${gitDir}\n`, "excluded.txt": "x\n", "kept.txt": "x\n" });
  const result = await indexer.indexWorkspace(root, options());
  assert.deepEqual(indexedPaths(result), ["kept.txt"]);
  assert.deepEqual(result.stats.skipped, { ignored: 1 });
});

test("names with gitignore special characters are re-included literally", async () => {
  const root = makeTree({
    ".gitignore": "out*/\n",
    ".repollamaignore": "!out \\[1\\]!#/\n",
    "out [1]!#/a.txt": "x\n",
    "out2/b.txt": "x\n",
  });
  const result = await indexer.indexWorkspace(root, options());
  assert.deepEqual(indexedPaths(result), [".gitignore", ".repollamaignore", "out [1]!#/a.txt"]);
  assert.deepEqual(result.stats.skipped, { ignored: 1 });
});

test("a file cannot be re-included when its folder is excluded (as in git)", async () => {
  const root = makeTree({
    ".gitignore": "logs/\n!logs/keep.txt\ncache/*\n!cache/keep.txt\n",
    "logs/keep.txt": "x\n",
    "cache/keep.txt": "cache/* excludes the contents, not the folder, so this one comes back\n",
    "cache/drop.txt": "x\n",
  });
  const result = await indexer.indexWorkspace(root, options());
  assert.deepEqual(indexedPaths(result), [".gitignore", "cache/keep.txt"]);
  assert.deepEqual(result.stats.skipped, { ignored: 2 });
});

test("glob syntax: **, *, ?, {a,b} and [classes]", async () => {
  const root = makeTree({
    "a.log": "x\n",
    "deep/er/b.tmp": "x\n",
    "src/x/test/t.ts": "x\n",
    "src/x/main.ts": "x\n",
    "file1.txt": "x\n",
    "file10.txt": "x\n",
    "a.md": "x\n",
    "c.md": "x\n",
  });
  const result = await indexer.indexWorkspace(
    root,
    options({ exclude: ["**/*.{log,tmp}", "src/**/test/**", "file?.txt", "[ab].md"] }),
  );
  assert.deepEqual(indexedPaths(result), ["c.md", "file10.txt", "src/x/main.ts"]);
  assert.deepEqual(result.stats.skipped, { ignored: 5 });
});
